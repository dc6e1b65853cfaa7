//! The id_token (OIDC Core 2): its claims, the acr it states, and `at_hash`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Map, Value};

use policies::LevelName;

use crate::IdpError;
use crate::provider::Provider;
use crate::token::Grant;

/// `at_hash` (OIDC Core 3.1.3.6): the left half of the access token's hash, with the hash
/// of the id_token's algorithm (SHA-512 for Ed25519, as the OpenID errata settle it).
pub(crate) fn at_hash(algorithm: hsm_shim::SignatureAlgorithm, access_token: &str) -> String {
    use aws_lc_rs::digest;
    let hash = match algorithm {
        hsm_shim::SignatureAlgorithm::Es384 => &digest::SHA384,
        hsm_shim::SignatureAlgorithm::EdDsa => &digest::SHA512,
        _ => &digest::SHA256,
    };
    let d = digest::digest(hash, access_token.as_bytes());
    B64.encode(&d.as_ref()[..d.as_ref().len() / 2])
}

/// The claims of an id_token: those every id_token carries, and those the request asked
/// for and the service may receive (`released`).
#[derive(Debug, serde::Serialize)]
pub(crate) struct IdTokenClaims<'a> {
    pub(crate) iss: &'a str,
    pub(crate) sub: String,
    pub(crate) aud: &'a str,
    pub(crate) iat: i64,
    pub(crate) exp: i64,
    pub(crate) auth_time: i64,
    pub(crate) acr: String,
    pub(crate) amr: &'a [String],
    pub(crate) sid: &'a str,
    pub(crate) at_hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) nonce: Option<&'a str>,
    #[serde(flatten)]
    pub(crate) released: Map<String, Value>,
}

impl Provider {
    /// The acr a login at `level` states for a request that asked for `requested` (in order
    /// of preference): the first requested value the level satisfies, in the form it was
    /// asked (OIDC Core 5.5.1.1: a URI when a URI was asked), else the level's first name.
    pub(crate) fn acr_for(&self, level: &LevelName, requested: &[String]) -> Result<String, IdpError> {
        let reached = self.level(level)?;
        let satisfied = requested.iter().find(|v| self.policies.level_for_acr(v).is_some_and(|l| l.level <= reached.level));
        Ok(satisfied.cloned().or_else(|| reached.acr.first().cloned()).unwrap_or_default())
    }

    /// The acr of a grant (grants from before the acr was kept state the level's first name).
    pub(crate) fn granted_acr(&self, grant: &Grant) -> Result<String, IdpError> {
        match &grant.acr {
            Some(acr) => Ok(acr.clone()),
            None => self.acr_for(&grant.level, &[]),
        }
    }
}
