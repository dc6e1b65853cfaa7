//! Token revocation (RFC 7009).

use crate::clients;
use crate::keyspace;
use crate::oauth::{ErrorCode, OAuthError, Params};
use crate::provider::Provider;

impl Provider {
    /// Token revocation (RFC 7009): a refresh token revokes its whole grant, an access token
    /// itself. Unknown tokens are not an error; another client's token is refused and stays
    /// as it was (2.1).
    pub async fn revoke(&self, mut params: Params, authorization: Option<&str>, now: i64) -> Result<(), OAuthError> {
        let presented = clients::presented(authorization, &mut params)?;
        let client = self.client(presented.client_id()).await?.ok_or_else(|| OAuthError::invalid_client("unknown client"))?;
        let endpoint = format!("{}/revoke", self.issuer());
        self.authenticate(&presented, &client, &endpoint, now).await?;
        let token = params.require("token")?;
        let not_yours = || {
            tracing::warn!(target: "audit", event = "token.revoke_refused", client = client.id.as_str(), "a client tried to revoke another client's token");
            Err(OAuthError::new(ErrorCode::UnauthorizedClient, "the token was not issued to this client; only its own client may revoke it"))
        };
        if let Some((family, _)) = self.refresh_tokens.read(token) {
            match self.durable.refresh_family(family).await? {
                Some(f) if f.client_id != client.id => return not_yours(),
                Some(_) => {
                    self.revoke_family(family).await?;
                    tracing::info!(target: "audit", event = "token.revoked", client = client.id.as_str(), "refresh token revoked");
                }
                None => {}
            }
            return Ok(());
        }
        match self.access_grant(token, now).await? {
            Some(a) if a.client_id != client.id => not_yours(),
            Some(_) => {
                self.ephemeral.delete(&keyspace::access_token(token)).await?;
                tracing::info!(target: "audit", event = "token.revoked", client = client.id.as_str(), "access token revoked");
                Ok(())
            }
            None => Ok(()),
        }
    }
}
