//! The SSO session: what the cookie names in the ephemeral store, its idle and absolute
//! limits (per level of assurance), and how it is read and saved.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use policies::LevelName;

use crate::IdpError;
use crate::keyspace;
use crate::provider::Provider;

/// An SSO session, as kept in the ephemeral store (compact: one per citizen logged in).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The citizen's opaque id.
    #[serde(rename = "c")]
    pub citizen_id: String,
    /// Level reached.
    #[serde(rename = "l")]
    pub level: LevelName,
    /// Methods used (ids from the policy files).
    #[serde(rename = "m")]
    pub methods: Vec<String>,
    /// When the citizen last authenticated (Unix seconds).
    #[serde(rename = "t")]
    pub auth_time: i64,
    /// When the session began.
    #[serde(rename = "s")]
    pub started: i64,
    /// Clients that received tokens in this session.
    #[serde(rename = "r", default)]
    pub clients: Vec<String>,
    /// The `sid` claim: stable for the session's life, while the cookie that names the
    /// session changes at every login and step-up.
    #[serde(rename = "i")]
    pub sid: String,
}

/// A session and the secret that names it (the cookie value, never in `Debug` output).
#[derive(Clone)]
pub struct LiveSession {
    /// The cookie value.
    pub id: String,
    /// The session.
    pub session: Session,
}

impl LiveSession {
    /// The `sid` claim (never the cookie itself).
    pub fn sid(&self) -> String {
        self.session.sid.clone()
    }
}

impl Provider {
    /// The SSO session a cookie names, if it is still alive (idle and absolute limits of its
    /// level); refreshes its idle timer.
    pub async fn session(&self, cookie: Option<&str>, now: i64) -> Result<Option<LiveSession>, IdpError> {
        let Some(id) = cookie.filter(|c| c.len() == 43) else { return Ok(None) };
        let key = keyspace::session(id);
        let Some(bytes) = self.ephemeral.get(&key).await? else { return Ok(None) };
        let session: Session = serde_json::from_slice(&bytes).map_err(|source| IdpError::Record { what: "SSO session", source })?;
        let level = self.level(&session.level)?;
        if now >= session.started + level.session_max.as_secs() as i64 {
            self.ephemeral.delete(&key).await?;
            return Ok(None);
        }
        self.ephemeral.touch(&key, self.session_ttl(&session, now)?).await?;
        Ok(Some(LiveSession { id: id.to_owned(), session }))
    }

    pub(crate) fn session_ttl(&self, session: &Session, now: i64) -> Result<Duration, IdpError> {
        let level = self.level(&session.level)?;
        let left = (session.started + level.session_max.as_secs() as i64 - now).max(1) as u64;
        Ok(level.session_idle.min(Duration::from_secs(left)))
    }

    pub(crate) async fn save_session(&self, live: &LiveSession, now: i64) -> Result<(), IdpError> {
        let bytes = serde_json::to_vec(&live.session).map_err(|source| IdpError::Record { what: "SSO session", source })?;
        self.ephemeral.put(&keyspace::session(&live.id), &bytes, self.session_ttl(&live.session, now)?).await?;
        Ok(())
    }
}

impl std::fmt::Debug for LiveSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSession").field("id", &"<redacted>").field("session", &self.session).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_cookie() {
        let session = Session {
            citizen_id: "c1".into(),
            level: policies::Policies::shipped().expect("policies").level("low").expect("low").level.to_name(),
            methods: vec![],
            auth_time: 1,
            started: 1,
            clients: vec![],
            sid: "s".into(),
        };
        let live = LiveSession { id: "the-cookie-value-is-a-secret".into(), session };
        let shown = format!("{live:?}");
        assert!(!shown.contains("the-cookie-value-is-a-secret") && shown.contains("<redacted>"), "{shown}");
    }
}
