//! The token endpoint (OIDC Core 3.1.3, RFC 6749 6): client authentication, then one module
//! per grant type; the tokens a grant issues (access token, refresh token, id_token).

pub mod authorization_code;
pub mod client_credentials;
pub mod refresh_token;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use policies::LevelName;

use crate::authorize::ClaimsRequest;
use crate::citizens::{self, Lang, Profile};
use crate::clients::{self, Client};
use crate::id_token::{IdTokenClaims, at_hash};
use crate::keyspace;
use crate::metrics::Counters;
use crate::oauth::{ErrorCode, OAuthError, Params};
use crate::provider::{Provider, random_token};

/// What a refresh token or access token grants (stored as the token's document).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Grant {
    pub(crate) scopes: Vec<String>,
    pub(crate) claims: ClaimsRequest,
    pub(crate) claims_locales: Vec<String>,
    pub(crate) level: LevelName,
    pub(crate) amr: Vec<String>,
    pub(crate) auth_time: i64,
    pub(crate) sid: String,
    pub(crate) nonce: Option<String>,
    /// The acr the id_token states: the first requested value the login satisfied.
    #[serde(default)]
    pub(crate) acr: Option<String>,
}

/// The grant types the token endpoint serves, each in its own module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantType {
    /// `authorization_code` ([`authorization_code`]).
    AuthorizationCode,
    /// `refresh_token` ([`refresh_token`]).
    RefreshToken,
    /// `client_credentials` ([`client_credentials`]).
    ClientCredentials,
}

impl GrantType {
    /// Every grant type, as discovery lists them.
    pub const ALL: [GrantType; 3] = [GrantType::AuthorizationCode, GrantType::RefreshToken, GrantType::ClientCredentials];

    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::ClientCredentials => "client_credentials",
        }
    }
}

impl std::str::FromStr for GrantType {
    type Err = OAuthError;

    fn from_str(s: &str) -> Result<Self, OAuthError> {
        GrantType::ALL.into_iter().find(|g| g.as_str() == s).ok_or_else(|| OAuthError::new(ErrorCode::UnsupportedGrantType, format!("grant_type {s}")))
    }
}

/// An access token's record.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct AccessGrant {
    pub(crate) client_id: String,
    pub(crate) citizen_id: String,
    pub(crate) family: String,
    pub(crate) expires_at: i64,
    pub(crate) grant: Grant,
}

impl Provider {
    /// The token endpoint (OIDC Core 3.1.3, RFC 6749 6).
    pub async fn token(&self, mut params: Params, authorization: Option<&str>, now: i64) -> Result<Value, OAuthError> {
        let presented = clients::presented(authorization, &mut params)?;
        let client = self.client(presented.client_id()).await?.ok_or_else(|| OAuthError::invalid_client("unknown client"))?;
        let endpoint = format!("{}/token", self.issuer());
        self.authenticate(&presented, &client, &endpoint, now).await?;
        match params.require("grant_type")?.parse::<GrantType>()? {
            GrantType::AuthorizationCode => {
                let tokens = self.exchange_code(&client, &params, now).await?;
                Counters::count(&self.counters.code_exchanges);
                Ok(tokens)
            }
            GrantType::RefreshToken => {
                let tokens = self.refresh(&client, &params, now).await?;
                Counters::count(&self.counters.refreshes);
                Ok(tokens)
            }
            GrantType::ClientCredentials => self.client_credentials(&client, &params, now).await,
        }
    }

    pub(crate) async fn issue_tokens(
        &self,
        client: &Client,
        citizen_id: &str,
        family: &str,
        grant: Grant,
        refresh: String,
        now: i64,
    ) -> Result<Value, OAuthError> {
        let citizen = self.token_citizen(citizen_id).await?.ok_or_else(|| OAuthError::invalid_grant("the citizen no longer exists"))?;
        let access = random_token()?;
        let expires_at = now + self.settings.access_ttl.as_secs() as i64;
        let record =
            AccessGrant { client_id: client.id.to_string(), citizen_id: citizen_id.to_owned(), family: family.to_owned(), expires_at, grant: grant.clone() };
        self.ephemeral.put(&keyspace::access_token(&access), &serde_json::to_vec(&record).map_err(OAuthError::server)?, self.settings.access_ttl).await?;
        let profile = Profile::from_json(&citizen.profile)?;
        let langs = Lang::all_of(&grant.claims_locales.join(" "));
        let mut released = Map::new();
        for claim in &grant.claims.id_token {
            citizens::add_claim(&mut released, claim, &profile, &citizen.national_id, &langs);
        }
        let sub = self.subject(client, citizen_id);
        self.index_subject(client, &sub, citizen_id).await?;
        let claims = IdTokenClaims {
            iss: self.issuer(),
            sub,
            aud: &client.id,
            iat: now,
            exp: now + self.settings.id_token_ttl.as_secs() as i64,
            auth_time: grant.auth_time,
            acr: self.granted_acr(&grant)?,
            amr: &grant.amr,
            sid: &grant.sid,
            at_hash: at_hash(client.id_token_alg, &access),
            nonce: grant.nonce.as_deref(),
            released,
        };
        let id_token = self.keys.sign(client.id_token_alg, &serde_json::to_value(&claims).map_err(OAuthError::server)?, None, now).await?;
        let body = json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.settings.access_ttl.as_secs(),
            "scope": grant.scopes.join(" "),
            "refresh_token": refresh,
            "id_token": id_token,
        });
        tracing::info!(target: "audit", event = "token.issued", client = client.id.as_str(), "tokens issued");
        Ok(body)
    }

    /// Keeps the pairwise `sub` of a service that may ask citizens to sign, so that the
    /// signing API can find the citizen it names; only for those services, and written
    /// only when absent (a read, not a write, on every later exchange).
    async fn index_subject(&self, client: &Client, sub: &str, citizen_id: &str) -> Result<(), OAuthError> {
        let signs = client.service.scopes.iter().any(|s| s == client_credentials::ESIGN_SCOPE);
        if !signs || client.service.public_subject || self.durable.subject_citizen(&client.sector, sub).await?.is_some() {
            return Ok(());
        }
        self.durable.put_subject(&client.sector, sub, citizen_id).await?;
        Ok(())
    }

    /// Revokes refresh tokens and access tokens of a family.
    pub(crate) async fn revoke_family(&self, family: &str) -> Result<(), OAuthError> {
        self.durable.revoke_refresh_family(family).await?;
        self.ephemeral.put(&keyspace::revoked_family(family), b"1", self.settings.access_ttl).await?;
        Ok(())
    }

    pub(crate) async fn access_grant(&self, token: &str, now: i64) -> Result<Option<AccessGrant>, OAuthError> {
        let Some(bytes) = self.ephemeral.get(&keyspace::access_token(token)).await? else { return Ok(None) };
        let grant: AccessGrant = serde_json::from_slice(&bytes).map_err(OAuthError::server)?;
        if grant.expires_at <= now || self.ephemeral.get(&keyspace::revoked_family(&grant.family)).await?.is_some() {
            return Ok(None);
        }
        Ok(Some(grant))
    }
}
