//! Consent: which claims a request releases, whether the citizen has allowed them, the
//! consent page's answer, and the account page's list and withdrawal of consents.

use std::sync::Arc;

use store::ConsentRecord;

use crate::authorize::{AuthorizationRequest, Next};
use crate::citizens;
use crate::clients::Client;
use crate::keyspace;
use crate::oauth::{ErrorCode, OAuthError};
use crate::provider::Provider;

impl Provider {
    /// The claims a request would release (for the consent page and the record of it).
    pub fn released_claims(&self, client: &Client, request: &AuthorizationRequest) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let from_scopes = request.scopes.iter().flat_map(|s| citizens::scope_claims(s).iter().map(|c| c.to_string()));
        for claim in from_scopes.chain(request.claims.userinfo.iter().cloned()).chain(request.claims.id_token.iter().cloned()) {
            if citizens::SUPPORTED_CLAIMS.contains(&claim.as_str())
                && !["acr", "amr", "auth_time", "sid", "sub"].contains(&claim.as_str())
                && self.releasable(client, &claim)
                && !out.contains(&claim)
            {
                out.push(claim);
            }
        }
        out.sort();
        out
    }

    pub(crate) async fn consented(&self, client: &Client, request: &AuthorizationRequest, citizen_id: &str) -> Result<bool, OAuthError> {
        let Some(record) = self.durable.consent(citizen_id, &client.id).await? else { return Ok(false) };
        let granted: Vec<String> = serde_json::from_str(&record.grant).unwrap_or_default();
        Ok(self.released_claims(client, request).iter().all(|c| granted.contains(c)))
    }

    /// The citizen's answer on the consent page.
    pub async fn consent(&self, tx: &str, cookie: Option<&str>, approve: bool, now: i64) -> Result<Next, OAuthError> {
        let Some(t) = self.transaction(tx).await? else { return Err(OAuthError::invalid_request("the request has expired; start again")) };
        if !t.consent {
            tracing::warn!(target: "audit", event = "consent.misused", "a login transaction was answered on the consent page");
            return Err(OAuthError::invalid_request("this request is waiting for a login, not for consent"));
        }
        self.ephemeral.delete(&keyspace::transaction(tx)).await?;
        let request = t.request;
        let back = |e: OAuthError| Next::Redirect(self.error_redirect(&request.redirect_uri, &e, request.state.as_deref()));
        let Some(session) = self.session(cookie, now).await? else {
            return Ok(back(OAuthError::new(ErrorCode::LoginRequired, "the session ended before consent")));
        };
        let client = self.client(&request.client_id).await?.ok_or_else(|| OAuthError::invalid_request("the client has gone"))?;
        if !approve {
            tracing::info!(target: "audit", event = "consent.refused", client = client.id.as_str(), "citizen refused consent");
            return Ok(back(OAuthError::new(ErrorCode::AccessDenied, "the citizen did not consent")));
        }
        if client.service.consent_required {
            let claims = self.released_claims(&client, &request);
            let grant = serde_json::to_string(&claims).unwrap_or_default();
            self.durable
                .put_consent(&ConsentRecord { citizen_id: session.session.citizen_id.clone(), client_id: client.id.to_string(), grant, granted_at: now })
                .await?;
            tracing::info!(target: "audit", event = "consent.given", client = client.id.as_str(), "citizen consented");
        }
        match self.issue_code(&client, request.clone(), session, now).await {
            Ok(next) => Ok(next),
            Err(e) => Ok(back(e)),
        }
    }

    /// The consents the citizen of an SSO session has given, with the clients they were
    /// given to (`None` for a client removed since); `None` without a live session.
    pub async fn account_consents(&self, cookie: Option<&str>, now: i64) -> Result<Option<Vec<(ConsentRecord, Option<Arc<Client>>)>>, OAuthError> {
        let Some(live) = self.session(cookie, now).await? else { return Ok(None) };
        let mut out = Vec::new();
        for consent in self.durable.consents_of(&live.session.citizen_id).await? {
            let client = self.client(&consent.client_id).await.ok().flatten();
            out.push((consent, client));
        }
        Ok(Some(out))
    }

    /// The citizen of an SSO session withdraws a consent: the client must ask again, and
    /// the refresh tokens it holds for the citizen stop working. `false` without a live
    /// session or without such a consent.
    pub async fn withdraw_consent(&self, cookie: Option<&str>, client_id: &str, now: i64) -> Result<bool, OAuthError> {
        let Some(live) = self.session(cookie, now).await? else { return Ok(false) };
        let withdrawn = self.durable.revoke_consent(&live.session.citizen_id, client_id).await?;
        if withdrawn {
            tracing::info!(target: "audit", event = "consent.withdrawn", citizen = live.session.citizen_id, client = client_id, "the citizen withdrew a consent");
        }
        Ok(withdrawn)
    }
}
