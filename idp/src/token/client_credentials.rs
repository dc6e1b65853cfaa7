//! The `client_credentials` grant (RFC 6749 4.4): an agency acting for itself, with no
//! citizen behind the request, gets a short-lived access token for machine scopes (the
//! signing API's `esign`). Confidential clients only; no refresh token, no id_token. The
//! token is an agency grant, a record of its own: it is never taken for a citizen's
//! access token, and a citizen's access token is never taken for it.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::clients::{AuthMethod, Client};
use crate::keyspace;
use crate::oauth::{ErrorCode, OAuthError, Params};
use crate::provider::{Provider, random_token};

/// The scopes a client may hold for itself, without a citizen: each a service's policy
/// grants with its `scopes`. They are never granted through a citizen's authorization.
pub const MACHINE_SCOPES: [&str; 1] = [ESIGN_SCOPE];

/// The scope of the agency signing API.
pub const ESIGN_SCOPE: &str = "esign";

/// The longest an agency token lives (shorter when the provider's access tokens are).
pub const AGENCY_TOKEN_TTL: Duration = Duration::from_secs(300);

/// An agency access token's record.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AgencyGrant {
    /// The client the token was issued to.
    pub client_id: String,
    /// The machine scopes it grants.
    pub scopes: Vec<String>,
    /// When it expires, Unix seconds.
    pub expires_at: i64,
}

impl AgencyGrant {
    /// Whether it grants `scope`.
    pub fn grants(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

impl Provider {
    fn agency_token_ttl(&self) -> Duration {
        self.settings.access_ttl.min(AGENCY_TOKEN_TTL)
    }

    pub(crate) async fn client_credentials(&self, client: &Client, params: &Params, now: i64) -> Result<Value, OAuthError> {
        if client.registration.token_endpoint_auth_method == AuthMethod::None {
            return Err(OAuthError::new(ErrorCode::UnauthorizedClient, "client_credentials is for confidential clients; a public client has no credentials"));
        }
        let asked: Vec<&str> = params.require("scope")?.split(' ').filter(|s| !s.is_empty()).collect();
        if asked.is_empty() {
            return Err(OAuthError::invalid_request("missing parameter scope"));
        }
        let mut scopes: Vec<String> = Vec::new();
        for scope in asked {
            if !MACHINE_SCOPES.contains(&scope) {
                return Err(OAuthError::new(
                    ErrorCode::InvalidScope,
                    format!("scope {scope} needs a citizen; client_credentials grants only {}", MACHINE_SCOPES.join(", ")),
                ));
            }
            if !client.service.scopes.iter().any(|s| s == scope) {
                return Err(OAuthError::new(ErrorCode::InvalidScope, format!("the service policy of {} does not grant the scope {scope}", client.id)));
            }
            if !scopes.iter().any(|s| s == scope) {
                scopes.push(scope.to_owned());
            }
        }
        let token = random_token()?;
        let ttl = self.agency_token_ttl();
        let grant = AgencyGrant { client_id: client.id.to_string(), scopes, expires_at: now + ttl.as_secs() as i64 };
        self.ephemeral.put(&keyspace::agency_token(&token), &serde_json::to_vec(&grant).map_err(OAuthError::server)?, ttl).await?;
        tracing::info!(target: "audit", event = "token.issued", client = client.id.as_str(), grant = "client_credentials", "agency token issued");
        Ok(json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": ttl.as_secs(),
            "scope": grant.scopes.join(" "),
        }))
    }

    /// The agency grant of a token, if it is one and has not expired at `now`.
    pub async fn agency_grant(&self, token: &str, now: i64) -> Result<Option<AgencyGrant>, OAuthError> {
        let Some(bytes) = self.ephemeral.get(&keyspace::agency_token(token)).await? else { return Ok(None) };
        let grant: AgencyGrant = serde_json::from_slice(&bytes).map_err(OAuthError::server)?;
        Ok((grant.expires_at > now).then_some(grant))
    }

    /// Whether `token` is a citizen's live access token (for a precise refusal: it is a
    /// good token, without the scope an agency endpoint needs).
    pub async fn is_citizen_token(&self, token: &str, now: i64) -> Result<bool, OAuthError> {
        Ok(self.access_grant(token, now).await?.is_some())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use base64::Engine;
    use hsm_shim::KeyStore;
    use hsm_shim::soft::{OperatorSecret, SoftKeyStore};

    use super::*;
    use crate::esign_api::ApiError;

    async fn provider(dir: &std::path::Path) -> Provider {
        let secret = OperatorSecret::new(b"unit test secret, not for production".to_vec()).expect("secret");
        let keys: Arc<dyn KeyStore> = Arc::new(SoftKeyStore::open_or_create(&dir.join("keys"), &secret).expect("key store"));
        let durable: Arc<dyn store::DurableStore> = Arc::new(store::SqliteStore::open(&dir.join("db")).expect("db"));
        let signing = crate::keys::SigningKeys::open(keys, durable.clone(), Duration::from_secs(900), 1).await.expect("keys");
        let policies = Arc::new(policies::Policies::shipped().expect("policies"));
        Provider::new(crate::Settings::new("https://id.example.jo", vec![7; 32]), policies, durable, Arc::new(store::ephemeral::MemoryStore::new()), signing)
            .expect("provider")
    }

    /// Registers `id` (secret `id-secret` unless public); its Basic credentials.
    async fn register(p: &Provider, id: &str, public: bool) -> String {
        let secret = format!("{id}-secret");
        let hash = hex::encode(crate::provider::sha256(secret.as_bytes()));
        let registration = if public {
            json!({"redirect_uris": [format!("https://{id}.example.jo/cb")], "token_endpoint_auth_method": "none"})
        } else {
            json!({"redirect_uris": [format!("https://{id}.example.jo/cb")], "token_endpoint_auth_method": "client_secret_basic", "client_secret_sha256": hash})
        };
        let record = store::ClientRecord { client_id: id.into(), registration: registration.to_string(), created_at: 0 };
        p.durable.insert_client(&record).await.expect("client");
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}")))
    }

    fn form(s: &str) -> Params {
        Params::parse(s.as_bytes()).expect("params")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn agencies_get_short_lived_esign_tokens_and_nothing_else() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = provider(dir.path()).await;
        let notary = register(&p, "notary", false).await;
        let civil = register(&p, "civil-status", false).await;
        register(&p, "kiosk", true).await;
        let now = 1_800_000_000;

        let body = p.token(form("grant_type=client_credentials&scope=esign"), Some(&notary), now).await.expect("token");
        assert_eq!((body["scope"].as_str(), body["expires_in"].as_u64()), (Some("esign"), Some(300)), "{body}");
        assert!(body.get("refresh_token").is_none() && body.get("id_token").is_none(), "{body}");
        let token = body["access_token"].as_str().expect("token");
        let agency = p.esign_agency(Some(token), now + 299).await.expect("a live esign token");
        assert_eq!(agency.id.as_str(), "notary");
        // Expired: refused as invalid_token, like garbage.
        assert!(matches!(p.esign_agency(Some(token), now + 300).await, Err(ApiError::InvalidToken(_))));
        assert!(matches!(p.esign_agency(Some("garbage"), now).await, Err(ApiError::InvalidToken(_))));
        assert!(matches!(p.esign_agency(None, now).await, Err(ApiError::InvalidToken(_))));
        // An agency token is not a citizen's access token.
        assert_eq!(p.userinfo(token, now).await.expect_err("not for userinfo").code, ErrorCode::InvalidToken);

        let refused = |r: Result<Value, OAuthError>| r.expect_err("refused").code;
        assert_eq!(refused(p.token(form("grant_type=client_credentials&scope=openid%20esign"), Some(&notary), now).await), ErrorCode::InvalidScope);
        assert_eq!(refused(p.token(form("grant_type=client_credentials&scope=profile"), Some(&notary), now).await), ErrorCode::InvalidScope);
        assert_eq!(refused(p.token(form("grant_type=client_credentials"), Some(&notary), now).await), ErrorCode::InvalidRequest);
        assert_eq!(refused(p.token(form("grant_type=client_credentials&scope=esign"), Some(&civil), now).await), ErrorCode::InvalidScope);
        assert_eq!(refused(p.token(form("grant_type=client_credentials&scope=esign&client_id=kiosk"), None, now).await), ErrorCode::UnauthorizedClient);
    }
}
