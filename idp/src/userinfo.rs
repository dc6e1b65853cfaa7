//! The userinfo endpoint (OIDC Core 5.3).

use serde_json::{Map, Value};

use crate::citizens::{self, Lang, Profile};
use crate::oauth::{ErrorCode, OAuthError};
use crate::provider::Provider;

impl Provider {
    /// The userinfo endpoint (OIDC Core 5.3): the claims the access token's scopes and
    /// `claims` request allow, as the client's policy permits.
    pub async fn userinfo(&self, access_token: &str, now: i64) -> Result<Value, OAuthError> {
        let grant = self
            .access_grant(access_token, now)
            .await?
            .ok_or_else(|| OAuthError::new(ErrorCode::InvalidToken, "the access token is unknown, expired or revoked"))?;
        let client = self.client(&grant.client_id).await?.ok_or_else(|| OAuthError::new(ErrorCode::InvalidToken, "the client has gone"))?;
        let citizen = self.token_citizen(&grant.citizen_id).await?.ok_or_else(|| OAuthError::new(ErrorCode::InvalidToken, "the citizen has gone"))?;
        let profile = Profile::from_json(&citizen.profile)?;
        let langs = Lang::all_of(&grant.grant.claims_locales.join(" "));
        let mut out = Map::new();
        out.insert("sub".into(), self.subject(&client, &citizen.id).into());
        let wanted =
            grant.grant.scopes.iter().flat_map(|s| citizens::scope_claims(s).iter().map(|c| c.to_string())).chain(grant.grant.claims.userinfo.iter().cloned());
        for claim in wanted {
            if self.releasable(&client, &claim) {
                citizens::add_claim(&mut out, &claim, &profile, &citizen.national_id, &langs);
            }
        }
        Ok(Value::Object(out))
    }
}
