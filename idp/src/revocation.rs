//! Token revocation (RFC 7009).

use crate::clients;
use crate::keyspace;
use crate::oauth::{OAuthError, Params};
use crate::provider::Provider;

impl Provider {
    /// Token revocation (RFC 7009): a refresh token revokes its whole grant, an access token
    /// itself. Unknown tokens are not an error.
    pub async fn revoke(&self, mut params: Params, authorization: Option<&str>, now: i64) -> Result<(), OAuthError> {
        let presented = clients::presented(authorization, &mut params)?;
        let client = self.client(presented.client_id()).await?.ok_or_else(|| OAuthError::invalid_client("unknown client"))?;
        let endpoint = format!("{}/revoke", self.issuer());
        self.authenticate(&presented, &client, &endpoint, now).await?;
        let token = params.require("token")?;
        if let Some((family, _)) = self.refresh_tokens.read(token) {
            if self.durable.refresh_family(family).await?.is_some_and(|f| f.client_id == client.id) {
                self.revoke_family(family).await?;
                tracing::info!(target: "audit", event = "token.revoked", client = client.id, "refresh token revoked");
            }
            return Ok(());
        }
        if let Some(a) = self.access_grant(token, now).await?
            && a.client_id == client.id
        {
            self.ephemeral.delete(&keyspace::access_token(token)).await?;
            tracing::info!(target: "audit", event = "token.revoked", client = client.id, "access token revoked");
        }
        Ok(())
    }
}
