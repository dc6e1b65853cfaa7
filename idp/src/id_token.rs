//! The id_token (OIDC Core 2): its claims and `at_hash`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

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
