//! A relying party's own key pair (P-256) for `private_key_jwt`: its JWK Set to register,
//! and client assertions (RFC 7523) and other JWTs signed with it.

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};

/// A client's signing key, named `kid` in its JWK Set.
pub struct ClientKey {
    key: EcdsaKeyPair,
    kid: String,
}

impl ClientKey {
    /// A fresh P-256 key.
    pub fn generate(kid: &str) -> Self {
        let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("key");
        ClientKey { key, kid: kid.to_owned() }
    }

    /// The JWK Set to register (`hawiya client add --jwks`).
    pub fn jwks(&self) -> Value {
        let public = hsm_shim::PublicKey::from_parts(hsm_shim::KeySpec::EcP256, self.key.public_key().as_ref()).expect("public");
        let jwk = hsm_shim::jose::jwk(&public, &self.kid, hsm_shim::SignatureAlgorithm::Es256).expect("jwk");
        json!({"keys": [jwk]})
    }

    /// A JWT of `claims` signed with the key (ES256).
    pub fn signed(&self, claims: &Value) -> String {
        let header = B64.encode(json!({"alg": "ES256", "kid": self.kid}).to_string());
        let input = format!("{header}.{}", B64.encode(claims.to_string()));
        let sig = self.key.sign(&aws_lc_rs::rand::SystemRandom::new(), input.as_bytes()).expect("sign");
        format!("{input}.{}", B64.encode(sig.as_ref()))
    }

    /// A client assertion of `client_id` for the audience `aud`, valid for a minute.
    pub fn assertion(&self, client_id: &str, aud: &str, jti: &str) -> String {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_secs();
        self.signed(&json!({"iss": client_id, "sub": client_id, "aud": aud, "jti": jti, "exp": now + 60, "iat": now}))
    }
}
