//! Token introspection (RFC 7662) for agencies' resource servers.

use serde_json::{Value, json};

use crate::clients::{self, AuthMethod, Client};
use crate::oauth::{OAuthError, Params};
use crate::provider::Provider;
use crate::token::Grant;

impl Provider {
    /// Token introspection (RFC 7662) for agencies' resource servers. Only a confidential
    /// client may ask, and it learns about a token only when the token was issued to it or
    /// to a service whose policy names it among its `resource_servers`; any other token is
    /// `{"active": false}`, as an unknown one (RFC 7662 2.2).
    pub async fn introspect(&self, mut params: Params, authorization: Option<&str>, now: i64) -> Result<Value, OAuthError> {
        let presented = clients::presented(authorization, &mut params)?;
        let caller = self.client(presented.client_id()).await?.ok_or_else(|| OAuthError::invalid_client("unknown client"))?;
        if caller.registration.token_endpoint_auth_method == AuthMethod::None {
            tracing::warn!(target: "audit", event = "introspection.public_client", client = caller.id.as_str(), "a public client asked to introspect a token");
            return Err(OAuthError::invalid_client("a public client cannot introspect tokens; authenticate as a confidential client"));
        }
        let endpoint = format!("{}/introspect", self.issuer());
        self.authenticate(&presented, &caller, &endpoint, now).await?;
        let may_see = |client: &Client| client.id == caller.id || client.service.resource_servers.contains(&caller.id);
        let token = params.require("token")?;
        let inactive = json!({"active": false});
        // A refresh token is active while it is its family's live generation.
        if let Some((family, generation)) = self.refresh_tokens.read(token) {
            let Some(f) = self.durable.refresh_family(family).await? else { return Ok(inactive) };
            let Some(client) = self.client(&f.client_id).await?.filter(|c| may_see(c)) else { return Ok(inactive) };
            if f.revoked || f.generation != generation || f.expires_at <= now {
                return Ok(inactive);
            }
            let grant: Grant = serde_json::from_str(&f.grant).map_err(OAuthError::server)?;
            return self.introspection(&client, &f.citizen_id, &grant, f.expires_at, "refresh_token");
        }
        let Some(grant) = self.access_grant(token, now).await? else { return Ok(inactive) };
        let Some(client) = self.client(&grant.client_id).await?.filter(|c| may_see(c)) else { return Ok(inactive) };
        self.introspection(&client, &grant.citizen_id, &grant.grant, grant.expires_at, "Bearer")
    }

    pub(crate) fn introspection(&self, client: &Client, citizen_id: &str, grant: &Grant, expires_at: i64, token_type: &str) -> Result<Value, OAuthError> {
        Ok(json!({
            "active": true,
            "client_id": client.id,
            "scope": grant.scopes.join(" "),
            "sub": self.subject(client, citizen_id),
            "exp": expires_at,
            "iss": self.issuer(),
            "token_type": token_type,
            "acr": self.granted_acr(grant)?,
            "auth_time": grant.auth_time,
        }))
    }
}
