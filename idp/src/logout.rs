//! Logout: RP-initiated logout (its `id_token_hint`) and the end of an SSO session, which
//! sends a back-channel logout token to every client of the session.

use std::sync::Arc;

use serde_json::Value;

use crate::clients::Client;
use crate::keyspace;
use crate::oauth::OAuthError;
use crate::provider::{Provider, random_token};

impl Provider {
    /// Ends an SSO session (RP-initiated logout, or the citizen on the logout page) and
    /// enqueues a logout token for every client of the session that has a back-channel
    /// logout URI (delivered by the worker, see [`crate::backchannel`]); returns the clients
    /// that took part.
    ///
    /// The session lives in the ephemeral store and the queue in the durable one, so the two
    /// cannot change in one transaction. The deliveries are enqueued first, then the session
    /// is deleted: a crash between the two leaves a session whose relying parties are logged
    /// out (the citizen logs out again, and they get a second token), never a session ended
    /// here whose relying parties are never told. If the queue cannot be written, the
    /// session is not ended and the logout fails.
    pub async fn end_session(&self, cookie: Option<&str>, now: i64) -> Result<Vec<String>, OAuthError> {
        let Some(session) = self.session(cookie, now).await? else { return Ok(Vec::new()) };
        let mut owed = Vec::new();
        for client_id in &session.session.clients {
            let Some(client) = self.client(client_id).await? else { continue };
            let Some(uri) = client.registration.backchannel_logout_uri.clone() else { continue };
            let sub = self.subject(&client, &session.session.citizen_id);
            let claims = crate::backchannel::logout_claims(self.issuer(), &client.id, &sub, &session.session.sid, &random_token()?, now);
            owed.push((client.id.to_string(), uri, claims));
        }
        let deliveries = owed.len();
        self.enqueue(crate::backchannel::Kind::Logout, owed).await?;
        self.ephemeral.delete(&keyspace::session(&session.id)).await?;
        tracing::info!(target: "audit", event = "logout", citizen = session.session.citizen_id, deliveries, "SSO session ended");
        Ok(session.session.clients)
    }

    /// Checks an `id_token_hint` for logout: issued here (expired is fine) to a client that
    /// still exists.
    pub async fn logout_hint(&self, hint: &str) -> Result<LogoutHint, OAuthError> {
        let claims = self.keys.verify_own(hint).await.map_err(|_| OAuthError::invalid_request("id_token_hint was not issued by this provider"))?;
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer()) {
            return Err(OAuthError::invalid_request("id_token_hint was not issued by this provider"));
        }
        let aud = match claims.get("aud") {
            Some(Value::String(a)) => a.clone(),
            Some(Value::Array(a)) => a.first().and_then(Value::as_str).unwrap_or_default().to_owned(),
            _ => String::new(),
        };
        let client = self.client(&aud).await?.ok_or_else(|| OAuthError::invalid_request("id_token_hint names an unknown client"))?;
        Ok(LogoutHint { client, sid: claims.get("sid").and_then(Value::as_str).map(str::to_owned) })
    }
}

/// What a genuine `id_token_hint` tells a logout.
#[derive(Debug)]
pub struct LogoutHint {
    /// The client it was issued to.
    pub client: Arc<Client>,
    /// The SSO session it was issued in (`sid`).
    pub sid: Option<String>,
}
