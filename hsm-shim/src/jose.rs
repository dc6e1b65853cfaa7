//! JOSE for stored keys: JWS compact signatures (RFC 7515) and public JWKs (RFC 7517),
//! so an OpenID provider signs id_tokens in the key store and publishes the keys it uses;
//! and the other way round, reading others' JWKs and verifying their JWSs (client
//! assertions, request objects).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use der::Decode;
use der::asn1::UintRef;
use serde_json::{Map, Value, json};

use crate::algorithm::ecdsa_fixed_to_der;
use crate::public_key::der_tlv;
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

/// The JWK thumbprint of RFC 7638: SHA-256 over the key's required members in lexicographic
/// order, base64url. Names a public key independently of how its JWK was written.
pub fn thumbprint(jwk: &Value) -> Result<String, Error> {
    let member = |name: &str| jwk.get(name).and_then(Value::as_str).ok_or_else(|| Error::UnsupportedKey(format!("JWK without {name}")));
    let canonical = match member("kty")? {
        "EC" => json!({"crv": member("crv")?, "kty": "EC", "x": member("x")?, "y": member("y")?}),
        "OKP" => json!({"crv": member("crv")?, "kty": "OKP", "x": member("x")?}),
        "RSA" => json!({"e": member("e")?, "kty": "RSA", "n": member("n")?}),
        other => return Err(Error::UnsupportedKey(format!("JWK key type {other}"))),
    };
    // serde_json writes object members sorted (no preserve_order) and without whitespace.
    let text = serde_json::to_string(&canonical).map_err(|e| Error::UnsupportedKey(e.to_string()))?;
    Ok(B64.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes())))
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

/// Reads a public JWK: the key, and the algorithm it is pinned to if it says so. Refuses
/// private keys (a JWK with `d`), unknown key types and curves, and RSA sizes Hawiya does not
/// support.
pub fn public_key_from_jwk(jwk: &Value) -> Result<(PublicKey, Option<SignatureAlgorithm>), Error> {
    let bad = |what: &str| Error::UnsupportedKey(format!("JWK: {what}"));
    let field = |name: &str| -> Result<Vec<u8>, Error> {
        let text = jwk.get(name).and_then(Value::as_str).ok_or_else(|| bad(&format!("missing \"{name}\"")))?;
        B64.decode(text).map_err(|_| bad(&format!("\"{name}\" is not base64url")))
    };
    if jwk.get("d").is_some() {
        return Err(bad("a private key where a public key belongs"));
    }
    let key = match (jwk.get("kty").and_then(Value::as_str), jwk.get("crv").and_then(Value::as_str)) {
        (Some("EC"), Some(crv @ ("P-256" | "P-384"))) => {
            let (spec, n) = if crv == "P-256" { (KeySpec::EcP256, 32) } else { (KeySpec::EcP384, 48) };
            let (x, y) = (field("x")?, field("y")?);
            if x.len() != n || y.len() != n {
                return Err(bad("EC coordinates of the wrong length"));
            }
            let point: Vec<u8> = std::iter::once(4).chain(x).chain(y).collect();
            PublicKey::from_parts(spec, &point)?
        }
        (Some("OKP"), Some("Ed25519")) => PublicKey::from_parts(KeySpec::Ed25519, &field("x")?)?,
        (Some("RSA"), _) => {
            let integer = |bytes: Vec<u8>| {
                let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
                let mut content = bytes[start..].to_vec();
                if content.first().is_none_or(|b| b & 0x80 != 0) {
                    content.insert(0, 0);
                }
                der_tlv(0x02, &content)
            };
            let n = field("n")?;
            let bits = n.iter().skip_while(|&&b| b == 0).count() * 8;
            let spec = match bits {
                2048 => KeySpec::Rsa2048,
                3072 => KeySpec::Rsa3072,
                4096 => KeySpec::Rsa4096,
                _ => return Err(bad("RSA keys must have 2048, 3072 or 4096 bits")),
            };
            let mut body = integer(n);
            body.extend(integer(field("e")?));
            PublicKey::from_parts(spec, &der_tlv(0x30, &body))?
        }
        (kty, crv) => return Err(bad(&format!("unsupported key type {kty:?} / curve {crv:?}"))),
    };
    let algorithm = match jwk.get("alg").and_then(Value::as_str) {
        None => None,
        Some(name) => Some(algorithm_named(name)?),
    };
    Ok((key, algorithm))
}

/// The algorithm with that JOSE name; `none` and every MAC algorithm are refused.
pub fn algorithm_named(name: &str) -> Result<SignatureAlgorithm, Error> {
    SignatureAlgorithm::ALL.into_iter().find(|a| a.name() == name).ok_or_else(|| Error::UnsupportedKey(format!("JWS algorithm {name:?} is not accepted")))
}

/// A JWS in compact serialization, split and decoded but not yet verified.
#[derive(Debug)]
pub struct UnverifiedJws {
    /// The protected header.
    pub header: Map<String, Value>,
    /// The algorithm the header names (never `none`).
    pub algorithm: SignatureAlgorithm,
    /// The payload octets.
    pub payload: Vec<u8>,
    signing_input: String,
    signature: Vec<u8>,
}

impl UnverifiedJws {
    /// Splits and decodes a compact JWS; refuses anything malformed, `alg: none`, and
    /// critical header parameters (none is understood).
    pub fn parse(compact: &str) -> Result<Self, Error> {
        let bad = |what: &'static str| Error::Crypto(what);
        let mut parts = compact.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(bad("a JWS has three dot-separated parts"));
        };
        let header: Map<String, Value> =
            serde_json::from_slice(&B64.decode(h).map_err(|_| bad("JWS header is not base64url"))?).map_err(|_| bad("JWS header is not a JSON object"))?;
        if header.contains_key("crit") {
            return Err(bad("JWS with critical header parameters"));
        }
        let algorithm = algorithm_named(header.get("alg").and_then(Value::as_str).ok_or(bad("JWS header without alg"))?)?;
        Ok(UnverifiedJws {
            header,
            algorithm,
            payload: B64.decode(p).map_err(|_| bad("JWS payload is not base64url"))?,
            signing_input: format!("{h}.{p}"),
            signature: B64.decode(s).map_err(|_| bad("JWS signature is not base64url"))?,
        })
    }

    /// The `kid` header, if any.
    pub fn kid(&self) -> Option<&str> {
        self.header.get("kid").and_then(Value::as_str)
    }

    /// Verifies the signature with `key`, which must fit the header's algorithm (and the
    /// algorithm the key is pinned to, if it is).
    pub fn verify(&self, key: &PublicKey, pinned: Option<SignatureAlgorithm>) -> Result<(), Error> {
        if pinned.is_some_and(|a| a != self.algorithm) {
            return Err(Error::AlgorithmNotAllowed { spec: key.spec(), algorithm: self.algorithm });
        }
        let signature = match self.algorithm {
            SignatureAlgorithm::Es256 | SignatureAlgorithm::Es384 => {
                let n = if self.algorithm == SignatureAlgorithm::Es256 { 64 } else { 96 };
                if self.signature.len() != n {
                    return Err(Error::BadSignature);
                }
                ecdsa_fixed_to_der(&self.signature)?
            }
            _ => self.signature.clone(),
        };
        key.verify(self.algorithm, self.signing_input.as_bytes(), &signature)
    }
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
    #[test]
    fn thumbprint_matches_rfc_7638() {
        // The example of RFC 7638 section 3.1.
        let jwk = serde_json::json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        assert_eq!(super::thumbprint(&jwk).expect("thumbprint"), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }

    use super::*;
    use crate::algorithm::ecdsa_fixed_to_der;

    #[test]
    fn reads_the_jwks_it_writes_and_refuses_bad_ones() {
        let ec = aws_lc_rs::signature::EcdsaKeyPair::generate(&aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING).expect("key");
        use aws_lc_rs::signature::KeyPair;
        let public = PublicKey::from_parts(KeySpec::EcP256, ec.public_key().as_ref()).expect("public");
        let jwk = jwk(&public, "k1", SignatureAlgorithm::Es256).expect("jwk");
        let (back, alg) = public_key_from_jwk(&jwk).expect("read back");
        assert_eq!((&back, alg), (&public, Some(SignatureAlgorithm::Es256)));
        // A JWS made by an independent signer verifies; a changed payload does not.
        let header = B64.encode(br#"{"alg":"ES256","kid":"k1"}"#);
        let payload = B64.encode(br#"{"iss":"x"}"#);
        let input = format!("{header}.{payload}");
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let sig = ec.sign(&rng, input.as_bytes()).expect("sign");
        let jws = UnverifiedJws::parse(&format!("{input}.{}", B64.encode(sig.as_ref()))).expect("parse");
        assert_eq!(jws.kid(), Some("k1"));
        jws.verify(&back, alg).expect("verifies");
        assert!(
            matches!(jws.verify(&back, Some(SignatureAlgorithm::Rs256)), Err(Error::AlgorithmNotAllowed { algorithm: SignatureAlgorithm::Es256, .. })),
            "pinned to another algorithm"
        );
        let tampered = UnverifiedJws::parse(&format!("{header}.{}.{}", B64.encode(br#"{"iss":"y"}"#), B64.encode(sig.as_ref()))).expect("parse");
        assert!(matches!(tampered.verify(&back, alg), Err(Error::BadSignature)));

        let mut private = jwk.clone();
        private["d"] = "AAAA".into();
        let unsupported = |jwk: &Value| match public_key_from_jwk(jwk) {
            Err(Error::UnsupportedKey(why)) => why,
            other => panic!("{jwk} gave {other:?}"),
        };
        assert!(unsupported(&private).contains("private"), "a JWK with private members is refused");
        assert!(unsupported(&json!({"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"})).contains("P-521"));
        assert!(unsupported(&json!({"kty": "oct", "k": "AA"})).contains("oct"));
        for none in [r#"{"alg":"none"}"#, r#"{"alg":"HS256"}"#] {
            assert!(matches!(UnverifiedJws::parse(&format!("{}.{payload}.", B64.encode(none))), Err(Error::UnsupportedKey(_))), "{none}");
        }
        let crit = UnverifiedJws::parse(&format!("{}.{payload}.", B64.encode(r#"{"alg":"ES256","crit":["x"]}"#)));
        assert!(matches!(crit, Err(Error::Crypto("JWS with critical header parameters"))));
        assert!(matches!(UnverifiedJws::parse("a.b"), Err(Error::Crypto("a JWS has three dot-separated parts"))));
    }

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
