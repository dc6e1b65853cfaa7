//! JOSE for stored keys: JWS compact signatures (RFC 7515) and public JWKs (RFC 7517),
//! so an OpenID provider signs id_tokens in the key store and publishes the keys it uses.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use der::Decode;
use der::asn1::UintRef;
use serde_json::{Map, Value, json};

use crate::signer::StoredKeySigner;
use crate::{Error, KeySpec, PublicKey, SignatureAlgorithm};

/// The public JWK of `key` with its key id, the algorithm it signs with and `use: sig`.
pub fn jwk(key: &PublicKey, kid: &str, algorithm: SignatureAlgorithm) -> Result<Value, Error> {
    algorithm.check_fits(key.spec())?;
    let bits = key.subject_public_key();
    let mut jwk = match key.spec() {
        KeySpec::EcP256 | KeySpec::EcP384 => {
            // Uncompressed point: 0x04 || x || y.
            let n = (bits.len() - 1) / 2;
            let crv = if key.spec() == KeySpec::EcP256 { "P-256" } else { "P-384" };
            json!({"kty": "EC", "crv": crv, "x": B64.encode(&bits[1..1 + n]), "y": B64.encode(&bits[1 + n..])})
        }
        KeySpec::Ed25519 => json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(bits)}),
        KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => {
            #[derive(der::Sequence)]
            struct RsaPublicKey<'a> {
                n: UintRef<'a>,
                e: UintRef<'a>,
            }
            let rsa = RsaPublicKey::from_der(bits).map_err(|e| Error::UnsupportedKey(e.to_string()))?;
            json!({"kty": "RSA", "n": B64.encode(rsa.n.as_bytes()), "e": B64.encode(rsa.e.as_bytes())})
        }
    };
    if let Value::Object(map) = &mut jwk {
        map.insert("kid".into(), kid.into());
        map.insert("alg".into(), algorithm.name().into());
        map.insert("use".into(), "sig".into());
    }
    Ok(jwk)
}

/// Signs `payload` as a JWS in compact serialization with the protected header
/// `{"alg": …, "kid": kid}` plus `extra_header` (for example `typ`).
pub fn sign_compact(signer: &StoredKeySigner, kid: &str, extra_header: Map<String, Value>, payload: &[u8]) -> Result<String, Error> {
    let mut header = extra_header;
    header.insert("alg".into(), signer.algorithm().name().into());
    header.insert("kid".into(), kid.into());
    let header = serde_json::to_vec(&Value::Object(header)).map_err(|_| Error::Crypto("JWS header"))?;
    let mut jws = B64.encode(header);
    jws.push('.');
    jws.push_str(&B64.encode(payload));
    let signature = signer.sign_bytes(jws.as_bytes())?;
    let signature = match signer.algorithm() {
        SignatureAlgorithm::Es256 => ecdsa_der_to_fixed(&signature, 32)?,
        SignatureAlgorithm::Es384 => ecdsa_der_to_fixed(&signature, 48)?,
        _ => signature,
    };
    jws.push('.');
    jws.push_str(&B64.encode(signature));
    Ok(jws)
}

/// Converts a DER `Ecdsa-Sig-Value` to JOSE's fixed `r || s`, each `n` octets.
fn ecdsa_der_to_fixed(der: &[u8], n: usize) -> Result<Vec<u8>, Error> {
    #[derive(der::Sequence)]
    struct EcdsaSig<'a> {
        r: UintRef<'a>,
        s: UintRef<'a>,
    }
    let sig = EcdsaSig::from_der(der).map_err(|_| Error::Crypto("malformed ECDSA signature"))?;
    let mut out = vec![0u8; 2 * n];
    for (i, int) in [sig.r.as_bytes(), sig.s.as_bytes()].into_iter().enumerate() {
        if int.len() > n {
            return Err(Error::Crypto("ECDSA integer too long"));
        }
        out[i * n + n - int.len()..(i + 1) * n].copy_from_slice(int);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::ecdsa_fixed_to_der;

    #[test]
    fn der_and_fixed_round_trip() {
        let mut fixed = vec![0u8; 64];
        fixed[0] = 0x80;
        fixed[31] = 7;
        fixed[63] = 1;
        let der = ecdsa_fixed_to_der(&fixed).expect("der");
        assert_eq!(ecdsa_der_to_fixed(&der, 32).expect("fixed"), fixed);
    }
}
