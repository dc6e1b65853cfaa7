//! Every key the provider uses in the ephemeral store, built in one place.
//!
//! A key is `<namespace>:<name>`. Where the name is a secret the citizen's browser or a
//! client holds (a session cookie, a code, an access token), the key holds its SHA-256
//! instead, so that a read of the store (a Redis dump, a replica's memory) yields nothing
//! usable. Names that are random identifiers and not credentials by themselves (transaction
//! and smart-ID session ids, refresh-token families) are kept as they are.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

use crate::provider::sha256;

fn hashed(namespace: &str, secret: &str) -> String {
    format!("{namespace}:{}", B64.encode(sha256(secret.as_bytes())))
}

/// The SSO session a cookie names.
pub fn session(cookie: &str) -> String {
    hashed("sso", cookie)
}

/// A login (or consent) transaction.
pub fn transaction(tx: &str) -> String {
    format!("tx:{tx}")
}

/// An authorization code waiting to be exchanged.
pub fn code(code: &str) -> String {
    hashed("code", code)
}

/// A code that has been exchanged: its value is the family of the tokens it issued.
pub fn spent_code(code: &str) -> String {
    hashed("code-used", code)
}

/// An access token's grant.
pub fn access_token(token: &str) -> String {
    hashed("at", token)
}

/// An agency's access token (the `client_credentials` grant).
pub fn agency_token(token: &str) -> String {
    hashed("agency-at", token)
}

/// A token family whose access tokens are revoked.
pub fn revoked_family(family: &str) -> String {
    format!("revoked:{family}")
}

/// A client assertion's `jti`, spent once per client.
pub fn client_assertion(client_id: &str, jti: &str) -> String {
    hashed("jti", &format!("{client_id}:{jti}"))
}

/// The keys fetched from a client's `jwks_uri`.
pub fn client_jwks(client_id: &str) -> String {
    format!("jwks-uri:{client_id}")
}

/// A TOTP time step of an account, spent once.
pub fn totp_step(account: &str, step: u64) -> String {
    format!("totp-used:{account}:{step}")
}

/// A smart-ID session.
pub fn smart_id_session(session: &str) -> String {
    format!("smart-id:{session}")
}

/// The smart-ID session a citizen's device is shown (the newest).
pub fn smart_id_pending(national_id: &str) -> String {
    hashed("smart-id-pending", national_id)
}

/// A smart-ID session that has had its one answer.
pub fn smart_id_answered(session: &str) -> String {
    format!("smart-id-answered:{session}")
}

/// A signing session.
pub fn signing_session(session: &str) -> String {
    format!("signing:{session}")
}

/// The document of a signing session, until it is signed.
pub fn signing_document(session: &str) -> String {
    format!("signing-document:{session}")
}

/// The signed file of a signing session, for its download.
pub fn signing_result(session: &str) -> String {
    format!("signing-result:{session}")
}

/// The signing session a citizen's device is shown (the newest).
pub fn signing_pending(national_id: &str) -> String {
    hashed("signing-pending", national_id)
}

/// A signing session that has had its one answer.
pub fn signing_answered(session: &str) -> String {
    format!("signing-answered:{session}")
}

/// A CSC authorisation (`credentials/authorize`).
pub fn csc_authorization(id: &str) -> String {
    format!("csc-authorization:{id}")
}

/// The CSC authorisation a citizen's device is shown (the newest).
pub fn csc_pending(national_id: &str) -> String {
    hashed("csc-pending", national_id)
}

/// A CSC authorisation that has had its one answer from the device.
pub fn csc_answered(id: &str) -> String {
    format!("csc-answered:{id}")
}

/// A CSC authorisation whose one SAD has been issued.
pub fn csc_released(id: &str) -> String {
    format!("csc-released:{id}")
}

/// A SAD (signature activation data), until `signatures/signHash` spends it.
pub fn csc_sad(sad: &str) -> String {
    hashed("csc-sad", sad)
}

/// A device proof's `jti`, spent once per device key.
pub fn device_proof(kid: &str, jti: &str) -> String {
    hashed("device-jti", &format!("{kid}.{jti}"))
}

/// A counter of attempts (see [`crate::throttle`]): `what` names the limit, `subject` whom
/// it counts (a national id, an address, a device).
pub fn attempts(what: &str, subject: &str) -> String {
    hashed(&format!("limit-{what}"), subject)
}
