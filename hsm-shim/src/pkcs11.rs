//! The PKCS#11 key store: keys on a hardware security module (or SoftHSM2 in tests).
//!
//! Private keys are generated on the token as sensitive, non-extractable objects; only the
//! public half and signatures ever leave it. Keys are found by their CKA_LABEL on one token.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

use crate::algorithm::ecdsa_fixed_to_der;
use crate::public_key::{der_octet_string, der_tlv};
use crate::{Error, KeyInfo, KeyRef, KeySpec, KeyStore, PublicKey, SignatureAlgorithm};

const OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_ED25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
/// DER `DigestInfo { sha256, NULL }` up to the 32 digest octets (RFC 8017 section 9.2, note 1).
const SHA256_DIGEST_INFO_PREFIX: &[u8] = &[0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20];

/// The user PIN of a token. Zeroized on drop; `Debug` prints nothing of it.
pub struct Pin(Zeroizing<String>);

impl Pin {
    /// The environment variable that may hold the PIN.
    pub const ENV: &'static str = "HAWIYA_PKCS11_PIN";
    /// The environment variable that may name a file holding the PIN.
    pub const ENV_FILE: &'static str = "HAWIYA_PKCS11_PIN_FILE";

    /// Wraps a PIN.
    pub fn new(pin: String) -> Self {
        Pin(Zeroizing::new(pin))
    }

    /// Reads the PIN from `HAWIYA_PKCS11_PIN` or the file named by `HAWIYA_PKCS11_PIN_FILE`.
    pub fn from_env() -> Result<Self, Error> {
        if let Ok(pin) = std::env::var(Self::ENV) {
            return Ok(Pin::new(pin));
        }
        let Some(path) = std::env::var_os(Self::ENV_FILE) else {
            return Err(Error::MissingSecret(format!("set {} or {} to the token's user PIN", Self::ENV, Self::ENV_FILE)));
        };
        let path = Path::new(&path);
        let pin = std::fs::read_to_string(path).map_err(Error::io(path))?;
        Ok(Pin::new(pin.trim_end_matches(['\n', '\r']).to_owned()))
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(<redacted>)")
    }
}

/// The PKCS#11 library state is process-wide (C_Initialize / C_Finalize), so one context per
/// module is shared by every store that uses it, as the PKCS#11 specification requires.
fn context(module: &Path) -> Result<Pkcs11, Error> {
    static CONTEXTS: Mutex<Vec<(PathBuf, Pkcs11)>> = Mutex::new(Vec::new());
    let mut contexts = CONTEXTS.lock().map_err(|_| Error::Pkcs11("context registry poisoned".into()))?;
    if let Some((_, ctx)) = contexts.iter().find(|(path, _)| path == module) {
        return Ok(ctx.clone());
    }
    let ctx = Pkcs11::new(module).map_err(|e| Error::Pkcs11(format!("loading {}: {e}", module.display())))?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(Error::Pkcs11(format!("initialising {}: {e}", module.display()))),
    }
    contexts.push((module.to_owned(), ctx.clone()));
    Ok(ctx)
}

#[derive(Clone)]
struct Known {
    private: ObjectHandle,
    public: PublicKey,
}

/// Keys on one token of a PKCS#11 module.
pub struct Pkcs11KeyStore {
    ctx: Pkcs11,
    slot: Slot,
    token: String,
    /// Logged-in sessions, reused; PKCS#11 sessions must not be used by two threads at once.
    sessions: Mutex<Vec<Session>>,
    known: RwLock<HashMap<String, Known>>,
}

impl fmt::Debug for Pkcs11KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11KeyStore").field("token", &self.token).finish_non_exhaustive()
    }
}

impl Pkcs11KeyStore {
    /// Opens the token labelled `token` in `module` and logs in as the user.
    pub fn open(module: &Path, token: &str, pin: &Pin) -> Result<Self, Error> {
        let ctx = context(module)?;
        let slot = find_slot(&ctx, token)?;
        let session = ctx.open_rw_session(slot).map_err(pkcs11_error)?;
        match session.login(UserType::User, Some(&AuthPin::new(pin.0.as_str().into()))) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(CkError::Pkcs11(RvError::PinIncorrect | RvError::PinLenRange, _)) => return Err(Error::WrongPin(token.to_owned())),
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => return Err(Error::TokenLocked(token.to_owned())),
            Err(e) => return Err(pkcs11_error(e)),
        }
        Ok(Pkcs11KeyStore { ctx, slot, token: token.to_owned(), sessions: Mutex::new(vec![session]), known: RwLock::default() })
    }

    fn with_session<T>(&self, f: impl FnOnce(&Session) -> Result<T, Error>) -> Result<T, Error> {
        let pooled = self.sessions.lock().map_err(|_| Error::Pkcs11("session pool poisoned".into()))?.pop();
        let session = match pooled {
            Some(s) => s,
            None => self.ctx.open_rw_session(self.slot).map_err(pkcs11_error)?,
        };
        let result = f(&session);
        if let Ok(mut pool) = self.sessions.lock() {
            pool.push(session);
        }
        result
    }

    fn object_label<'k>(&self, key: &'k KeyRef) -> Result<&'k str, Error> {
        match key {
            KeyRef::Pkcs11 { token, object } if *token == self.token => Ok(object),
            _ => Err(Error::ForeignKey(key.clone())),
        }
    }

    fn find(&self, key: &KeyRef) -> Result<Known, Error> {
        let label = self.object_label(key)?;
        if let Some(known) = self.known.read().map_err(|_| Error::Pkcs11("key cache poisoned".into()))?.get(label) {
            return Ok(known.clone());
        }
        let known = self.with_session(|session| {
            let private = find_one(session, ObjectClass::PRIVATE_KEY, label)?.ok_or_else(|| Error::UnknownKey(key.clone()))?;
            let public = find_one(session, ObjectClass::PUBLIC_KEY, label)?.ok_or_else(|| Error::UnknownKey(key.clone()))?;
            Ok(Known { private, public: read_public_key(session, public)? })
        })?;
        self.known.write().map_err(|_| Error::Pkcs11("key cache poisoned".into()))?.insert(label.to_owned(), known.clone());
        Ok(known)
    }
}

impl KeyStore for Pkcs11KeyStore {
    fn generate(&self, spec: KeySpec, label: &str) -> Result<KeyRef, Error> {
        crate::check_label(label)?;
        let mut id = [0u8; 16];
        SystemRandom::new().fill(&mut id).map_err(|_| Error::Crypto("random"))?;
        let common =
            |private: bool| vec![Attribute::Token(true), Attribute::Private(private), Attribute::Label(label.as_bytes().to_vec()), Attribute::Id(id.to_vec())];
        let mut public = common(false);
        public.push(Attribute::Verify(true));
        let mut private = common(true);
        private.extend([Attribute::Sensitive(true), Attribute::Extractable(false), Attribute::Sign(true)]);
        let mechanism = match spec {
            KeySpec::EcP256 | KeySpec::EcP384 => {
                public.push(Attribute::EcParams(if spec == KeySpec::EcP256 { OID_P256 } else { OID_P384 }.to_vec()));
                Mechanism::EccKeyPairGen
            }
            KeySpec::Ed25519 => {
                public.push(Attribute::EcParams(OID_ED25519.to_vec()));
                Mechanism::EccEdwardsKeyPairGen
            }
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => {
                public.push(Attribute::ModulusBits(u64::from(spec.rsa_bits().unwrap_or(2048)).into()));
                public.push(Attribute::PublicExponent(vec![0x01, 0x00, 0x01]));
                Mechanism::RsaPkcsKeyPairGen
            }
        };
        self.with_session(|session| {
            if find_one(session, ObjectClass::PRIVATE_KEY, label)?.is_some() {
                return Err(Error::DuplicateLabel(label.to_owned()));
            }
            session.generate_key_pair(&mechanism, &public, &private).map_err(pkcs11_error)?;
            Ok(())
        })?;
        tracing::info!(token = %self.token, object = label, %spec, "generated key on token");
        Ok(KeyRef::Pkcs11 { token: self.token.clone(), object: label.to_owned() })
    }

    fn public_key(&self, key: &KeyRef) -> Result<PublicKey, Error> {
        Ok(self.find(key)?.public)
    }

    fn ping(&self) -> Result<(), Error> {
        use cryptoki::session::SessionState;
        let state = self.with_session(|session| session.get_session_info().map(|i| i.session_state()).map_err(pkcs11_error))?;
        match state {
            SessionState::RwUser | SessionState::RoUser => Ok(()),
            other => Err(Error::Pkcs11(format!("the session on token {} is not logged in ({other:?})", self.token))),
        }
    }

    fn sign(&self, key: &KeyRef, algorithm: SignatureAlgorithm, message: &[u8]) -> Result<Vec<u8>, Error> {
        let known = self.find(key)?;
        algorithm.check_fits(known.public.spec())?;
        let pss = PkcsPssParams { hash_alg: MechanismType::SHA256, mgf: PkcsMgfType::MGF1_SHA256, s_len: 32u64.into() };
        let (mechanism, input): (Mechanism<'_>, Vec<u8>) = match algorithm {
            SignatureAlgorithm::Es256 => (Mechanism::Ecdsa, digest::digest(&digest::SHA256, message).as_ref().to_vec()),
            SignatureAlgorithm::Es384 => (Mechanism::Ecdsa, digest::digest(&digest::SHA384, message).as_ref().to_vec()),
            SignatureAlgorithm::EdDsa => (Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)), message.to_vec()),
            SignatureAlgorithm::Rs256 => (Mechanism::Sha256RsaPkcs, message.to_vec()),
            SignatureAlgorithm::Ps256 => (Mechanism::Sha256RsaPkcsPss(pss), message.to_vec()),
        };
        let signature = self.with_session(|session| session.sign(&mechanism, known.private, &input).map_err(pkcs11_error))?;
        match algorithm {
            SignatureAlgorithm::Es256 | SignatureAlgorithm::Es384 => ecdsa_fixed_to_der(&signature),
            _ => Ok(signature),
        }
    }

    fn sign_digest(&self, key: &KeyRef, algorithm: SignatureAlgorithm, digest: &[u8]) -> Result<Vec<u8>, Error> {
        algorithm.check_digest(digest)?;
        let known = self.find(key)?;
        algorithm.check_fits(known.public.spec())?;
        let pss = PkcsPssParams { hash_alg: MechanismType::SHA256, mgf: PkcsMgfType::MGF1_SHA256, s_len: 32u64.into() };
        let (mechanism, input): (Mechanism<'_>, Vec<u8>) = match algorithm {
            // CKM_ECDSA signs the hash it is given.
            SignatureAlgorithm::Es256 | SignatureAlgorithm::Es384 => (Mechanism::Ecdsa, digest.to_vec()),
            // CKM_RSA_PKCS pads what it is given: the EMSA-PKCS1-v1_5 DigestInfo is ours to add.
            SignatureAlgorithm::Rs256 => (Mechanism::RsaPkcs, [SHA256_DIGEST_INFO_PREFIX, digest].concat()),
            // CKM_RSA_PKCS_PSS takes the bare hash; its parameters name the hash it came from.
            SignatureAlgorithm::Ps256 => (Mechanism::RsaPkcsPss(pss), digest.to_vec()),
            SignatureAlgorithm::EdDsa => return Err(Error::PrehashNotSupported(algorithm)),
        };
        let signature = self.with_session(|session| session.sign(&mechanism, known.private, &input).map_err(pkcs11_error))?;
        match algorithm {
            SignatureAlgorithm::Es256 | SignatureAlgorithm::Es384 => ecdsa_fixed_to_der(&signature),
            _ => Ok(signature),
        }
    }

    fn list(&self) -> Result<Vec<KeyInfo>, Error> {
        let mut keys = self.with_session(|session| {
            let handles = session.find_objects(&[Attribute::Class(ObjectClass::PUBLIC_KEY)]).map_err(pkcs11_error)?;
            let mut keys = Vec::new();
            for handle in handles {
                let label = match session.get_attributes(handle, &[AttributeType::Label]).map_err(pkcs11_error)?.first() {
                    Some(Attribute::Label(l)) => String::from_utf8_lossy(l).into_owned(),
                    _ => continue,
                };
                let public = read_public_key(session, handle)?;
                keys.push(KeyInfo { key: KeyRef::Pkcs11 { token: self.token.clone(), object: label }, spec: public.spec() });
            }
            Ok(keys)
        })?;
        keys.sort_by(|a, b| a.key.label().cmp(b.key.label()));
        Ok(keys)
    }

    fn destroy(&self, key: &KeyRef, confirm_label: &str) -> Result<(), Error> {
        let label = self.object_label(key)?;
        if label != confirm_label {
            return Err(Error::DestroyNotConfirmed(key.clone()));
        }
        self.with_session(|session| {
            let mut found = false;
            for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
                if let Some(handle) = find_one(session, class, label)? {
                    session.destroy_object(handle).map_err(pkcs11_error)?;
                    found = true;
                }
            }
            if found { Ok(()) } else { Err(Error::UnknownKey(key.clone())) }
        })?;
        self.known.write().map_err(|_| Error::Pkcs11("key cache poisoned".into()))?.remove(label);
        tracing::warn!(key = %key, "destroyed key on token");
        Ok(())
    }
}

/// Initialises a fresh token on the module's first free slot: sets its label, SO PIN and user
/// PIN (what `softhsm2-util --init-token` or an HSM's admin tool does at a key ceremony).
pub fn initialize_token(module: &Path, label: &str, so_pin: &Pin, user_pin: &Pin) -> Result<(), Error> {
    // Two initialisations at once would pick the same free slot.
    static INITIALISING: Mutex<()> = Mutex::new(());
    let _one_at_a_time = INITIALISING.lock().map_err(|_| Error::Pkcs11("token initialisation lock poisoned".into()))?;
    let ctx = context(module)?;
    if find_slot(&ctx, label).is_ok() {
        return Err(Error::Pkcs11(format!("a token labelled {label:?} already exists")));
    }
    let mut free = None;
    for slot in ctx.get_slots_with_token().map_err(pkcs11_error)? {
        if !ctx.get_token_info(slot).map_err(pkcs11_error)?.token_initialized() {
            free = Some(slot);
            break;
        }
    }
    let slot = free.ok_or_else(|| Error::Pkcs11("no free slot to initialise a token in".into()))?;
    let so = AuthPin::new(so_pin.0.as_str().into());
    ctx.init_token(slot, &so, label).map_err(pkcs11_error)?;
    let session = ctx.open_rw_session(slot).map_err(pkcs11_error)?;
    session.login(UserType::So, Some(&so)).map_err(pkcs11_error)?;
    session.init_pin(&AuthPin::new(user_pin.0.as_str().into())).map_err(pkcs11_error)?;
    session.logout().map_err(pkcs11_error)?;
    Ok(())
}

fn find_slot(ctx: &Pkcs11, token: &str) -> Result<Slot, Error> {
    for slot in ctx.get_slots_with_token().map_err(pkcs11_error)? {
        let info = ctx.get_token_info(slot).map_err(pkcs11_error)?;
        if info.label().trim_end() == token {
            return Ok(slot);
        }
    }
    Err(Error::TokenNotFound(token.to_owned()))
}

fn find_one(session: &Session, class: ObjectClass, label: &str) -> Result<Option<ObjectHandle>, Error> {
    let found = session.find_objects(&[Attribute::Class(class), Attribute::Label(label.as_bytes().to_vec())]).map_err(pkcs11_error)?;
    match found.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        _ => Err(Error::Pkcs11(format!("more than one object labelled {label:?} on the token"))),
    }
}

fn read_public_key(session: &Session, handle: ObjectHandle) -> Result<PublicKey, Error> {
    let attrs = session.get_attributes(handle, &[AttributeType::KeyType]).map_err(pkcs11_error)?;
    let key_type = match attrs.first() {
        Some(Attribute::KeyType(t)) => *t,
        _ => return Err(Error::Pkcs11("public key without CKA_KEY_TYPE".into())),
    };
    if key_type == KeyType::RSA {
        let attrs = session.get_attributes(handle, &[AttributeType::Modulus, AttributeType::PublicExponent]).map_err(pkcs11_error)?;
        let (mut n, mut e) = (None, None);
        for a in attrs {
            match a {
                Attribute::Modulus(v) => n = Some(v),
                Attribute::PublicExponent(v) => e = Some(v),
                _ => {}
            }
        }
        let (Some(n), Some(e)) = (n, e) else { return Err(Error::Pkcs11("RSA public key without modulus or exponent".into())) };
        let mut body = der_tlv(0x02, &positive_integer(&n));
        body.extend(der_tlv(0x02, &positive_integer(&e)));
        let spec = match n.len() * 8 - n.first().map_or(0, |b| b.leading_zeros() as usize) {
            2048 => KeySpec::Rsa2048,
            3072 => KeySpec::Rsa3072,
            4096 => KeySpec::Rsa4096,
            bits => return Err(Error::UnsupportedKey(format!("RSA-{bits} on the token"))),
        };
        return PublicKey::from_parts(spec, &der_tlv(0x30, &body));
    }
    let attrs = session.get_attributes(handle, &[AttributeType::EcParams, AttributeType::EcPoint]).map_err(pkcs11_error)?;
    let (mut params, mut point) = (None, None);
    for a in attrs {
        match a {
            Attribute::EcParams(v) => params = Some(v),
            Attribute::EcPoint(v) => point = Some(v),
            _ => {}
        }
    }
    let (Some(params), Some(point)) = (params, point) else { return Err(Error::Pkcs11("EC public key without parameters or point".into())) };
    let spec = match params.as_slice() {
        OID_P256 => KeySpec::EcP256,
        OID_P384 => KeySpec::EcP384,
        p if p == OID_ED25519 || p.ends_with(b"edwards25519") => KeySpec::Ed25519,
        _ => return Err(Error::UnsupportedKey("EC curve on the token".into())),
    };
    // CKA_EC_POINT is a DER OCTET STRING around the point; some modules give it bare.
    let raw = der_octet_string(&point).unwrap_or(&point);
    PublicKey::from_parts(spec, raw)
}

fn positive_integer(bytes: &[u8]) -> Vec<u8> {
    let trimmed = &bytes[bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len().saturating_sub(1))..];
    let mut out = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_some_and(|b| b & 0x80 != 0) {
        out.push(0);
    }
    out.extend_from_slice(trimmed);
    out
}

fn pkcs11_error(e: CkError) -> Error {
    match e {
        CkError::Pkcs11(RvError::PinIncorrect, _) => Error::WrongPin(String::new()),
        CkError::Pkcs11(RvError::PinLocked, _) => Error::TokenLocked(String::new()),
        other => Error::Pkcs11(other.to_string()),
    }
}
