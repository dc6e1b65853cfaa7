//! The `authorization_code` grant: a code is spent once (a second use revokes what the first
//! issued), must come from the same client and redirect URI, and must match its PKCE
//! challenge; it starts a refresh-token family.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use store::RefreshFamily;

use policies::LevelName;

use crate::authorize::AuthorizationRequest;
use crate::clients::Client;
use crate::keyspace;
use crate::metrics::Counters;
use crate::oauth::{OAuthError, Params};
use crate::provider::{Provider, sha256};
use crate::token::Grant;

/// A code, as stored until it is exchanged.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct CodeGrant {
    pub(crate) request: AuthorizationRequest,
    pub(crate) citizen_id: String,
    pub(crate) level: LevelName,
    pub(crate) amr: Vec<String>,
    pub(crate) auth_time: i64,
    pub(crate) sid: String,
    /// Tokens issued from this code share this family (refresh tokens, access tokens).
    pub(crate) family: String,
}

impl Provider {
    pub(crate) async fn exchange_code(&self, client: &Client, params: &Params, now: i64) -> Result<Value, OAuthError> {
        let code = params.require("code")?;
        let key = keyspace::code(code);
        let Some(bytes) = self.ephemeral.take(&key).await? else {
            // A code used before: revoke what its first use issued (RFC 6749 4.1.2).
            if let Some(family) = self.ephemeral.get(&keyspace::spent_code(code)).await? {
                let family = String::from_utf8_lossy(&family).into_owned();
                self.revoke_family(&family).await?;
                Counters::count(&self.counters.token_reuse);
                tracing::warn!(target: "audit", event = "code.reused", client = client.id.as_str(), "authorization code reused; its tokens are revoked");
            }
            return Err(OAuthError::invalid_grant("the code is unknown, expired or used"));
        };
        let grant: CodeGrant = serde_json::from_slice(&bytes).map_err(OAuthError::server)?;
        // Remember the spent code as long as tokens from it may live.
        self.ephemeral.put(&keyspace::spent_code(code), grant.family.as_bytes(), self.settings.refresh_ttl.min(Duration::from_secs(86_400))).await?;
        if grant.request.client_id != client.id {
            return Err(OAuthError::invalid_grant("the code was issued to another client"));
        }
        if params.get("redirect_uri") != Some(grant.request.redirect_uri.as_str()) {
            return Err(OAuthError::invalid_grant("redirect_uri differs from the authorization request"));
        }
        match (&grant.request.code_challenge, params.get("code_verifier")) {
            (Some(challenge), Some(verifier)) => {
                let valid = (43..=128).contains(&verifier.len()) && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
                let computed = B64.encode(sha256(verifier.as_bytes()));
                if !valid || aws_lc_rs::constant_time::verify_slices_are_equal(computed.as_bytes(), challenge.as_bytes()).is_err() {
                    return Err(OAuthError::invalid_grant("the PKCE code_verifier does not match the code_challenge"));
                }
            }
            (Some(_), None) => return Err(OAuthError::invalid_grant("code_verifier is missing")),
            (None, Some(_)) => return Err(OAuthError::invalid_grant("code_verifier without a code_challenge")),
            (None, None) => {}
        }
        let g = Grant {
            scopes: grant.request.scopes.clone(),
            claims: grant.request.claims.clone(),
            claims_locales: grant.request.claims_locales.clone(),
            level: grant.level.clone(),
            amr: grant.amr.clone(),
            auth_time: grant.auth_time,
            sid: grant.sid.clone(),
            nonce: grant.request.nonce.clone(),
            acr: Some(self.acr_for(&grant.level, &grant.request.acr_values)?),
        };
        let refresh = self.new_refresh(client, &grant.citizen_id, &grant.family, &g, now).await?;
        self.issue_tokens(client, &grant.citizen_id, &grant.family, g, refresh, now).await
    }

    /// Starts the refresh-token family of a code's grant; returns its first token.
    pub(crate) async fn new_refresh(&self, client: &Client, citizen_id: &str, family: &str, grant: &Grant, now: i64) -> Result<String, OAuthError> {
        self.durable
            .insert_refresh_family(&RefreshFamily {
                family: family.to_owned(),
                client_id: client.id.to_string(),
                citizen_id: citizen_id.to_owned(),
                grant: serde_json::to_string(grant).map_err(OAuthError::server)?,
                generation: 0,
                issued_at: now,
                expires_at: now + self.settings.refresh_ttl.as_secs() as i64,
                ends_at: now + self.settings.refresh_lifetime.as_secs() as i64,
                revoked: false,
            })
            .await?;
        Ok(self.refresh_tokens.token(family, 0))
    }

    /// Spends a code nobody will exchange (the account page's own login).
    pub async fn discard_code(&self, code: &str) -> Result<(), OAuthError> {
        self.ephemeral.delete(&keyspace::code(code)).await?;
        Ok(())
    }
}
