//! Refresh tokens: `<family>.<generation>.<mac>`.
//!
//! A token names its family and generation, under an HMAC-SHA-256 with a key only the
//! provider holds, so that the store keeps one row per family and no token or hash: the
//! token of the family's current generation is the live one, an earlier generation is a
//! copy someone kept (reuse), and nothing else verifies. Forging a token needs the key;
//! reading the store yields none.

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

use serde_json::Value;
use store::Rotation;

use crate::IdpError;
use crate::clients::Client;
use crate::metrics::Counters;
use crate::oauth::{OAuthError, Params};
use crate::provider::Provider;
use crate::token::Grant;

/// Issues and reads refresh tokens.
pub struct RefreshTokens {
    key: hmac::Key,
}

impl std::fmt::Debug for RefreshTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshTokens(<key>)")
    }
}

/// A new family's identifier: 128 random bits, base64url.
pub fn new_family() -> Result<String, IdpError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| IdpError::Crypto("random"))?;
    Ok(B64.encode(bytes))
}

impl RefreshTokens {
    /// Tokens under a key derived from the provider's secret for this purpose alone.
    pub fn new(secret: &[u8]) -> Self {
        let derived = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), b"hawiya refresh-token MAC key v1");
        RefreshTokens { key: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()) }
    }

    /// The token of `family` at `generation`.
    pub fn token(&self, family: &str, generation: i64) -> String {
        let body = format!("{family}.{generation}");
        let mac = hmac::sign(&self.key, body.as_bytes());
        format!("{body}.{}", B64.encode(mac))
    }

    /// The family and generation a genuine token names; `None` for anything else.
    pub fn read<'a>(&self, token: &'a str) -> Option<(&'a str, i64)> {
        let (body, mac) = token.rsplit_once('.')?;
        let (family, generation) = body.split_once('.')?;
        let digits = (1..=18).contains(&generation.len()) && generation.bytes().all(|b| b.is_ascii_digit());
        if family.len() != 22 || !digits || (generation.starts_with('0') && generation != "0") {
            return None;
        }
        let mac = B64.decode(mac).ok()?;
        hmac::verify(&self.key, body.as_bytes(), &mac).ok()?;
        Some((family, generation.parse().ok()?))
    }
}

impl Provider {
    pub(crate) async fn refresh(&self, client: &Client, params: &Params, now: i64) -> Result<Value, OAuthError> {
        let invalid = || OAuthError::invalid_grant("the refresh token is unknown, expired, revoked or another client's");
        let (family, generation) = self.refresh_tokens.read(params.require("refresh_token")?).ok_or_else(invalid)?;
        let expires_at = now + self.settings.refresh_ttl.as_secs() as i64;
        match self.durable.rotate_refresh_family(family, generation, &client.id, expires_at, now).await? {
            Rotation::Rotated(f) => {
                let mut grant: Grant = serde_json::from_str(&f.grant).map_err(OAuthError::server)?;
                // A refreshed id_token carries no nonce (OIDC Core 12.2).
                grant.nonce = None;
                let next = self.refresh_tokens.token(&f.family, f.generation);
                self.issue_tokens(client, &f.citizen_id, &f.family, grant, next, now).await
            }
            Rotation::Reused { family } => {
                self.revoke_family(&family).await?;
                Counters::count(&self.counters.token_reuse);
                tracing::warn!(target: "audit", event = "refresh.reused", client = client.id.as_str(), "refresh token reused; its family is revoked");
                Err(OAuthError::invalid_grant("the refresh token was already used; every token of this grant is revoked"))
            }
            Rotation::Invalid => Err(invalid()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genuine_tokens_read_back_and_nothing_else_does() {
        let tokens = RefreshTokens::new(b"provider secret");
        let family = new_family().expect("family");
        let t = tokens.token(&family, 7);
        assert_eq!(tokens.read(&t), Some((family.as_str(), 7)));
        assert_eq!(tokens.read(&tokens.token(&family, 0)), Some((family.as_str(), 0)));
        // Another key, another generation under the same MAC, a damaged MAC, junk.
        assert_eq!(RefreshTokens::new(b"another secret").read(&t), None);
        let (_, mac) = t.rsplit_once('.').expect("mac");
        assert_eq!(tokens.read(&format!("{family}.8.{mac}")), None);
        assert_eq!(tokens.read(&format!("{family}.07.{mac}")), None);
        // A character of the MAC changed (not its last, whose low bits base64 may ignore).
        let at = t.len() - 10;
        let other = if &t[at..=at] == "A" { "B" } else { "A" };
        assert_eq!(tokens.read(&format!("{}{other}{}", &t[..at], &t[at + 1..])), None);
        for junk in ["", ".", "..", "a.b.c", &format!("{family}.-1.{mac}"), &format!("{family}.{}.{mac}", "9".repeat(30))] {
            assert_eq!(tokens.read(junk), None, "{junk}");
        }
    }
}
