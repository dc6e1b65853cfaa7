//! Passwords: Argon2id with OWASP's parameters, PHC strings, and evened-out checks.

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use argon2::password_hash::{PasswordHash, PasswordHasher as _, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::IdpError;

/// A password as typed. Zeroized on drop; `Debug` prints nothing of it.
pub struct Password(Zeroizing<String>);

impl Password {
    /// Shortest accepted password (NIST SP 800-63B: at least 8).
    pub const MIN: usize = 8;
    /// Longest accepted password: long passphrases welcome, megabyte inputs not.
    pub const MAX: usize = 256;

    /// Checks the length (in characters) of a new password.
    pub fn new(password: String) -> Result<Self, IdpError> {
        let password = Zeroizing::new(password);
        let len = password.chars().count();
        if !(Self::MIN..=Self::MAX).contains(&len) {
            return Err(IdpError::PasswordLength { min: Self::MIN, max: Self::MAX });
        }
        Ok(Password(password))
    }

    fn bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// Hashes and checks passwords. Checking a password for an account that does not exist
/// costs the same as for one that does, so timing does not tell them apart.
///
/// Checks reuse their 19 MiB of Argon2 memory (zeroing fresh memory and faulting its pages
/// in cost a tenth of every check), and count the CPU time they take, which the server
/// reports apart from everything else it does (`hawiya_password_check_cpu_seconds_total`).
pub struct PasswordHasher {
    argon: Argon2<'static>,
    dummy: String,
    memory: Mutex<Vec<Vec<Block>>>,
    checks: AtomicU64,
    cpu_nanos: AtomicU64,
}

impl fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHasher").finish_non_exhaustive()
    }
}

impl PasswordHasher {
    /// Argon2id, 19 MiB, 2 passes, 1 lane: OWASP's recommended minimum.
    pub fn new() -> Result<Self, IdpError> {
        let params = Params::new(19 * 1024, 2, 1, None).map_err(|_| IdpError::Crypto("Argon2 parameters"))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut random = [0u8; 24];
        SystemRandom::new().fill(&mut random).map_err(|_| IdpError::Crypto("random"))?;
        let mut hasher = PasswordHasher { argon, dummy: String::new(), memory: Mutex::default(), checks: AtomicU64::new(0), cpu_nanos: AtomicU64::new(0) };
        hasher.dummy = hasher.hash(&Password(Zeroizing::new(hex(&random))))?;
        Ok(hasher)
    }

    /// The PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`) to store.
    pub fn hash(&self, password: &Password) -> Result<String, IdpError> {
        let mut salt = [0u8; 16];
        SystemRandom::new().fill(&mut salt).map_err(|_| IdpError::Crypto("random"))?;
        let salt = SaltString::encode_b64(&salt).map_err(|_| IdpError::Crypto("salt"))?;
        let hash = self.argon.hash_password(password.bytes(), &salt).map_err(|_| IdpError::Crypto("Argon2id"))?;
        Ok(hash.to_string())
    }

    /// Whether `password` matches `stored`; with `None` (no such account) the same work is
    /// done against a dummy hash and the answer is `false`. Hashes made with other
    /// parameters verify with their own. The comparison is constant-time.
    pub fn verify(&self, password: &Password, stored: Option<&str>) -> Result<bool, IdpError> {
        let started = cpu_time::ThreadTime::now();
        let corrupt = |e: &dyn fmt::Display| IdpError::CorruptHash(e.to_string());
        let phc = PasswordHash::new(stored.unwrap_or(&self.dummy)).map_err(|e| corrupt(&e))?;
        let algorithm = Algorithm::try_from(phc.algorithm).map_err(|e| corrupt(&e))?;
        let version = phc.version.map(Version::try_from).transpose().map_err(|e| corrupt(&e))?.unwrap_or_default();
        let params = Params::try_from(&phc).map_err(|e| corrupt(&e))?;
        let (Some(salt), Some(expected)) = (phc.salt, phc.hash) else { return Err(corrupt(&"no salt or hash")) };
        let mut salt_bytes = [0u8; 64];
        let salt = salt.decode_b64(&mut salt_bytes).map_err(|e| corrupt(&e))?;

        let mut memory = self.memory.lock().ok().and_then(|mut pool| pool.pop()).unwrap_or_default();
        if memory.len() < params.block_count() {
            memory.resize(params.block_count(), Block::default());
        }
        let mut computed = Zeroizing::new(vec![0u8; expected.len()]);
        let outcome = Argon2::new(algorithm, version, params.clone()).hash_password_into_with_memory(
            password.bytes(),
            salt,
            &mut computed,
            &mut memory[..params.block_count()],
        );
        if let Ok(mut pool) = self.memory.lock() {
            pool.push(memory);
        }
        outcome.map_err(|_| IdpError::Crypto("Argon2id"))?;
        let matches = aws_lc_rs::constant_time::verify_slices_are_equal(&computed, expected.as_bytes()).is_ok();

        self.checks.fetch_add(1, Ordering::Relaxed);
        self.cpu_nanos.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        Ok(matches && stored.is_some())
    }

    /// How many checks ran, and the CPU time they took (in nanoseconds).
    pub fn checks(&self) -> (u64, u64) {
        (self.checks.load(Ordering::Relaxed), self.cpu_nanos.load(Ordering::Relaxed))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ() {
        let hasher = PasswordHasher::new().expect("hasher");
        let pw = Password::new("كلمة سر طويلة 2026".into()).expect("valid");
        let a = hasher.hash(&pw).expect("hash");
        let b = hasher.hash(&pw).expect("hash");
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "a fresh salt each time");
        assert!(hasher.verify(&pw, Some(&a)).expect("verify"));
        let wrong = Password::new("كلمة سر طويلة 2025".into()).expect("valid");
        assert!(!hasher.verify(&wrong, Some(&a)).expect("verify"));
        assert!(!hasher.verify(&pw, None).expect("an unknown account never matches"));
        assert!(matches!(hasher.verify(&pw, Some("not a hash")), Err(IdpError::CorruptHash(_))));
        // Hashes made with other parameters (an older policy) still verify, on reused memory.
        let older = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(8 * 1024, 3, 1, None).expect("params"));
        let salt = SaltString::encode_b64(&[7; 16]).expect("salt");
        let old_hash = older.hash_password(pw.bytes(), &salt).expect("hash").to_string();
        assert!(hasher.verify(&pw, Some(&old_hash)).expect("verify"));
        assert!(!hasher.verify(&wrong, Some(&old_hash)).expect("verify"));
        assert!(hasher.verify(&pw, Some(&a)).expect("verify after a smaller check"));
        let (checks, cpu) = hasher.checks();
        assert_eq!(checks, 6, "every completed check is counted, the damaged hash not");
        assert!(cpu > 0);
    }

    #[test]
    fn lengths_are_bounded_and_debug_is_redacted() {
        assert!(matches!(Password::new("short".into()), Err(IdpError::PasswordLength { min: 8, max: 256 })));
        assert!(matches!(Password::new("x".repeat(257)), Err(IdpError::PasswordLength { .. })));
        let pw = Password::new("a long enough secret".into()).expect("valid");
        assert_eq!(format!("{pw:?}"), "Password(<redacted>)");
    }
}
