//! One-time codes (TOTP, RFC 6238: HMAC-SHA-1, 6 digits, 30-second steps), as every
//! authenticator app speaks them.

use std::fmt;
use std::time::Duration;

use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use store::ephemeral::EphemeralStore;
use zeroize::Zeroizing;

use crate::IdpError;

const STEP: u64 = 30;
const DIGITS: u32 = 6;

/// A citizen's TOTP secret (20 random octets). Zeroized on drop; `Debug` prints nothing.
pub struct TotpSecret(Zeroizing<Vec<u8>>);

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(<redacted>)")
    }
}

impl TotpSecret {
    /// A fresh secret.
    pub fn generate() -> Result<Self, IdpError> {
        let mut bytes = Zeroizing::new(vec![0u8; 20]);
        SystemRandom::new().fill(&mut bytes).map_err(|_| IdpError::Crypto("random"))?;
        Ok(TotpSecret(bytes))
    }

    /// A stored secret (at least 16 octets, RFC 4226's minimum of 128 bits).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, IdpError> {
        if bytes.len() < 16 {
            return Err(IdpError::InvalidTotpSecret("shorter than 128 bits".into()));
        }
        Ok(TotpSecret(Zeroizing::new(bytes)))
    }

    /// The secret's octets, to store (sealed) and to show once at enrolment.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The `otpauth://` URI authenticator apps scan (Key Uri Format).
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> String {
        let enc = |s: &str| -> String {
            s.bytes()
                .map(|b| if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') { (b as char).to_string() } else { format!("%{b:02X}") })
                .collect()
        };
        format!(
            "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP}",
            enc(issuer),
            enc(account),
            base32(&self.0),
            enc(issuer)
        )
    }

    /// The code for the time step holding `unix_time`, with `digits` digits.
    pub fn code_at(&self, unix_time: u64, digits: u32) -> String {
        hotp(&self.0, unix_time / STEP, digits)
    }

    /// Checks a 6-digit code against the current step and one step either side (clock
    /// skew), in constant time per candidate; the matching step if any.
    pub fn matching_step(&self, code: &str, unix_time: u64) -> Option<u64> {
        if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let now = unix_time / STEP;
        let mut found = None;
        for step in [now.saturating_sub(1), now, now + 1] {
            let expected = hotp(&self.0, step, DIGITS);
            if aws_lc_rs::constant_time::verify_slices_are_equal(expected.as_bytes(), code.as_bytes()).is_ok() {
                found = Some(step);
            }
        }
        found
    }

    /// Checks a code and spends it: the same step of the same account is refused after its
    /// first use, even on another replica (the ephemeral store is shared).
    pub async fn verify_once(&self, replay: &dyn EphemeralStore, account: &str, code: &str, unix_time: u64) -> Result<bool, IdpError> {
        let Some(step) = self.matching_step(code, unix_time) else { return Ok(false) };
        // Kept for as long as the step could still be accepted.
        let key = crate::keyspace::totp_step(account, step);
        Ok(replay.put_new(&key, b"1", Duration::from_secs(3 * STEP)).await?)
    }
}

/// RFC 4226 HOTP with HMAC-SHA-1 and dynamic truncation.
fn hotp(secret: &[u8], counter: u64, digits: u32) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let mac = hmac::sign(&key, &counter.to_be_bytes());
    let mac = mac.as_ref();
    let offset = (mac[mac.len() - 1] & 0x0f) as usize;
    let binary = u32::from_be_bytes([mac[offset] & 0x7f, mac[offset + 1], mac[offset + 2], mac[offset + 3]]);
    format!("{:0width$}", binary % 10u32.pow(digits), width = digits as usize)
}

/// RFC 4648 base32 without padding (the form otpauth URIs use).
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_known_answers() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec()).expect("secret");
        let vectors = include_str!("../../testdata/rfc6238-sha1.txt");
        let mut checked = 0;
        for line in vectors.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
            let (time, code) = line.split_once(' ').expect("two columns");
            assert_eq!(secret.code_at(time.parse().expect("time"), 8), code, "at {time}");
            checked += 1;
        }
        assert_eq!(checked, 6);
    }

    #[test]
    fn rfc4648_base32() {
        for (input, output) in [("", ""), ("f", "MY"), ("fo", "MZXQ"), ("foo", "MZXW6"), ("foob", "MZXW6YQ"), ("fooba", "MZXW6YTB"), ("foobar", "MZXW6YTBOI")] {
            assert_eq!(base32(input.as_bytes()), output);
        }
    }

    #[test]
    fn accepts_one_step_of_skew_and_nothing_else() {
        let secret = TotpSecret::generate().expect("secret");
        let now = 1_790_000_015;
        for skew in [-30i64, 0, 30] {
            let code = secret.code_at((now as i64 + skew) as u64, 6);
            assert!(secret.matching_step(&code, now).is_some(), "skew {skew}");
        }
        let old = secret.code_at(now - 90, 6);
        let current = secret.code_at(now, 6);
        assert!(old == current || secret.matching_step(&old, now).is_none());
        assert!(secret.matching_step("12345", now).is_none());
        assert!(secret.matching_step("12345a", now).is_none());
        assert!(matches!(TotpSecret::from_bytes(vec![0; 10]), Err(IdpError::InvalidTotpSecret(_))));
    }

    #[test]
    fn otpauth_uri_names_issuer_and_account() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec()).expect("secret");
        let uri = secret.otpauth_uri("Hawiya", "9861234567");
        assert_eq!(uri, "otpauth://totp/Hawiya:9861234567?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Hawiya&algorithm=SHA1&digits=6&period=30");
    }

    #[tokio::test]
    async fn a_code_is_spent_on_first_use() {
        let replay = store::ephemeral::MemoryStore::new();
        let secret = TotpSecret::generate().expect("secret");
        let now = 1_790_000_015;
        let code = secret.code_at(now, 6);
        assert!(secret.verify_once(&replay, "citizen-1", &code, now).await.expect("verify"));
        assert!(!secret.verify_once(&replay, "citizen-1", &code, now + 5).await.expect("verify"), "replayed");
        assert!(secret.verify_once(&replay, "citizen-2", &secret.code_at(now, 6), now).await.expect("verify"), "per account");
        assert!(!secret.verify_once(&replay, "citizen-1", "000000", now).await.expect("verify") || code == "000000");
    }
}
