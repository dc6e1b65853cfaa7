//! Client authentication at the token, revocation and introspection endpoints, and the
//! client keys it needs (registered inline or fetched from the client's `jwks_uri`).

use std::time::Duration;

use serde_json::Value;

use crate::clients::{self, Client};
use crate::keyspace;
use crate::oauth::OAuthError;
use crate::provider::Provider;

impl Provider {
    /// A client's public keys: registered inline, or fetched from its `jwks_uri` and cached
    /// for five minutes (`fresh` skips the cache: a signature by a key the cache lacks may
    /// follow a rollover).
    pub(crate) async fn client_keys(&self, client: &Client, fresh: bool) -> Result<Vec<Value>, OAuthError> {
        let keys_of = |jwks: &Value| jwks.get("keys").and_then(Value::as_array).cloned().unwrap_or_default();
        if let Some(jwks) = &client.registration.jwks {
            return Ok(keys_of(jwks));
        }
        let Some(uri) = &client.registration.jwks_uri else { return Ok(Vec::new()) };
        let cache = keyspace::client_jwks(&client.id);
        if !fresh && let Some(bytes) = self.ephemeral.get(&cache).await? {
            return Ok(serde_json::from_slice::<Value>(&bytes).map(|j| keys_of(&j)).unwrap_or_default());
        }
        const LARGEST: usize = 64 * 1024;
        let fetched = async {
            let r = self.http.get(uri).send().await.map_err(|e| e.to_string())?;
            if !r.status().is_success() {
                return Err(format!("HTTP {}", r.status()));
            }
            let body = r.bytes().await.map_err(|e| e.to_string())?;
            if body.len() > LARGEST {
                return Err(format!("larger than {LARGEST} bytes"));
            }
            serde_json::from_slice::<Value>(&body).map_err(|e| e.to_string())
        }
        .await;
        match fetched {
            Ok(jwks) => {
                self.ephemeral.put(&cache, jwks.to_string().as_bytes(), Duration::from_secs(300)).await?;
                Ok(keys_of(&jwks))
            }
            Err(e) => {
                tracing::warn!(client = client.id.as_str(), uri, error = e, "cannot fetch a client's jwks_uri");
                Ok(Vec::new())
            }
        }
    }

    /// The client's keys; those from its `jwks_uri` are fetched anew when the cached ones
    /// do not satisfy `verifies` (the client may have rolled its key over).
    pub(crate) async fn client_keys_verifying(&self, client: &Client, verifies: impl Fn(&[Value]) -> bool) -> Result<Vec<Value>, OAuthError> {
        let keys = self.client_keys(client, false).await?;
        if client.registration.jwks_uri.is_none() || verifies(&keys) {
            return Ok(keys);
        }
        self.client_keys(client, true).await
    }

    /// Authenticates the caller of the token, revocation or introspection endpoint.
    pub(crate) async fn authenticate(&self, presented: &clients::Presented, client: &Client, endpoint: &str, now: i64) -> Result<(), OAuthError> {
        // Keys matter only for a client assertion: secrets never cause a JWKS fetch.
        let keys = if presented.is_assertion() { self.client_keys_verifying(client, |keys| presented.assertion_verifies(keys)).await? } else { Vec::new() };
        presented.authenticate(client, &keys, &[self.issuer(), endpoint], self.ephemeral.as_ref(), now).await
    }
}
