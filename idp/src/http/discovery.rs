//! Discovery (OpenID Connect Discovery 1.0) and the provider's public keys.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{Shared, json_response};
use crate::citizens::SUPPORTED_CLAIMS;
use crate::oauth::OAuthError;
use crate::token::GrantType;
use crate::unix_now as now;

pub(super) async fn discovery(State(p): State<Shared>) -> Response {
    let issuer = p.issuer();
    let acr: Vec<&String> = p.policies().levels().iter().flat_map(|l| &l.acr).collect();
    let algs: Vec<&str> = crate::keys::ALGORITHMS.iter().map(|a| a.name()).collect();
    let client_algs = ["RS256", "PS256", "ES256", "ES384", "EdDSA"];
    json_response(
        StatusCode::OK,
        json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "userinfo_endpoint": format!("{issuer}/userinfo"),
            "jwks_uri": format!("{issuer}/jwks"),
            "revocation_endpoint": format!("{issuer}/revoke"),
            "introspection_endpoint": format!("{issuer}/introspect"),
            "end_session_endpoint": format!("{issuer}/logout"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": GrantType::ALL.map(GrantType::as_str),
            "subject_types_supported": ["pairwise", "public"],
            "id_token_signing_alg_values_supported": algs,
            "scopes_supported": ["openid", "profile", "email", "phone", "address", "national_id", "offline_access", "esign"],
            "claims_supported": SUPPORTED_CLAIMS,
            "claims_parameter_supported": true,
            "request_parameter_supported": true,
            "request_object_signing_alg_values_supported": client_algs,
            "request_uri_parameter_supported": true,
            "require_request_uri_registration": true,
            "acr_values_supported": acr,
            "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic", "client_secret_post", "none"],
            "token_endpoint_auth_signing_alg_values_supported": client_algs,
            "revocation_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic", "client_secret_post", "none"],
            "introspection_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "ui_locales_supported": ["ar", "en"],
            "claims_locales_supported": ["ar", "en"],
            "display_values_supported": ["page", "popup", "touch", "wap"],
            "prompt_values_supported": ["none", "login", "consent"],
            "authorization_response_iss_parameter_supported": true,
            "backchannel_logout_supported": true,
            "backchannel_logout_session_supported": true,
        }),
    )
}

pub(super) async fn jwks(State(p): State<Shared>) -> Response {
    match p.keys().jwks(now()).await {
        Ok(keys) => {
            let mut r = json_response(StatusCode::OK, keys);
            // Short, so that a rotation reaches relying parties before the new key signs.
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=60"));
            r
        }
        Err(e) => OAuthError::server(e).into_response(),
    }
}
