//! `hawiya device …`: the reference smart-ID device.
//!
//! A device directory holds what a citizen's phone app or smart card would: the
//! authentication key (unlocked by PIN1) and the signing key (PIN2), each in an hsm-shim key
//! store of its own — soft (the key sealed under the device secret and the PIN), or a PKCS#11
//! token whose user PIN is the PIN (SoftHSM2 standing in for a smart card) — their
//! certificates, and a device key that signs the device's requests to the server. The PINs
//! never leave the device.
//!
//! Files: `device.json` (server, citizen, key stores), `device-secret` (0600), `device-key/`,
//! `authentication/` and `signature/` (soft stores), `authentication.pem`,
//! `signature.pem` and the CA certificates.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Subcommand;
use hsm_shim::pkcs11::{Pin, Pkcs11KeyStore};
use hsm_shim::signer::StoredKeySigner;
use hsm_shim::soft::{OperatorSecret, SoftKeyStore};
use hsm_shim::{KeySpec, KeyStore, SignatureAlgorithm};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use idp::smart_id::DeviceRequest;

use crate::CommandResult;
use crate::enrolment::{Custody, Identity};

const STATE_FILE: &str = "device.json";
const SECRET_FILE: &str = "device-secret";
const AUTH_LABEL: &str = "smart-id-authentication";
const SIGN_LABEL: &str = "smart-id-signature";
const DEVICE_LABEL: &str = "device";
/// Wrong PIN attempts before a key locks (PIN1 and PIN2 count apart).
const PIN_ATTEMPTS: u8 = 3;

#[derive(Subcommand)]
pub enum DeviceCommand {
    /// Activates this device with the code a registration officer gave the citizen: makes
    /// the authentication and signing keys, asks for PIN1 and PIN2, and gets the
    /// certificates.
    Activate {
        /// The device directory.
        #[arg(long, default_value = "hawiya-device")]
        dir: PathBuf,
        /// The identity server, e.g. http://127.0.0.1:8080.
        #[arg(long)]
        server: String,
        /// The one-time activation code.
        #[arg(long)]
        code: String,
        /// Keep the keys on PKCS#11 tokens of this module (a smart card) instead of in
        /// software; the tokens' user PINs are PIN1 and PIN2.
        #[arg(long)]
        pkcs11_module: Option<PathBuf>,
        /// The token for the authentication key (with --pkcs11-module).
        #[arg(long, default_value = "smart-id-pin1")]
        authentication_token: String,
        /// The token for the signing key (with --pkcs11-module).
        #[arg(long, default_value = "smart-id-pin2")]
        signature_token: String,
        /// Read PIN1 and PIN2 from standard input, one per line, without prompts.
        #[arg(long)]
        pin_stdin: bool,
    },
    /// Shows the pending request — a login (PIN1), or a signature (PIN2) of a document or of
    /// a signing tool's hashes (CSC): the service, what is to be signed, and the
    /// verification code.
    Pending {
        /// The device directory.
        #[arg(long, default_value = "hawiya-device")]
        dir: PathBuf,
    },
    /// Approves the pending request: a login with PIN1, a signature with PIN2.
    Approve {
        /// The device directory.
        #[arg(long, default_value = "hawiya-device")]
        dir: PathBuf,
        /// The verification code the login page shows: a different code refuses the
        /// request (it is someone else's).
        #[arg(long)]
        code: Option<String>,
        /// Read the PIN from standard input without a prompt.
        #[arg(long)]
        pin_stdin: bool,
    },
    /// Refuses the pending request.
    Refuse {
        /// The device directory.
        #[arg(long, default_value = "hawiya-device")]
        dir: PathBuf,
    },
}

/// Where a device's two citizen keys are.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
enum Keys {
    /// Soft key stores in the device directory, sealed under the device secret and a PIN.
    Soft,
    /// PKCS#11 tokens whose user PINs are PIN1 and PIN2.
    Pkcs11 { module: PathBuf, authentication_token: String, signature_token: String },
}

/// `device.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    server: String,
    /// The provider's issuer URL (requests are signed for it).
    issuer: String,
    national_id: policies::NationalId,
    custody: Custody,
    keys: Keys,
    device_kid: String,
}

/// Which of the citizen's two keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Which {
    Authentication,
    Signature,
}

impl Which {
    fn dir(self) -> &'static str {
        match self {
            Which::Authentication => "authentication",
            Which::Signature => "signature",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Which::Authentication => AUTH_LABEL,
            Which::Signature => SIGN_LABEL,
        }
    }

    fn pin_name(self) -> &'static str {
        match self {
            Which::Authentication => "PIN1",
            Which::Signature => "PIN2",
        }
    }

    /// The file that counts wrong attempts of this key's PIN.
    fn counter_file(self) -> &'static str {
        match self {
            Which::Authentication => "pin1-failures",
            Which::Signature => "pin2-failures",
        }
    }

    /// PIN1 has 4 to 12 digits, PIN2 5 to 12.
    fn check_pin(self, pin: &str) -> Result<(), String> {
        let min = if self == Which::Authentication { 4 } else { 5 };
        if (min..=12).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit()) {
            Ok(())
        } else {
            Err(format!("{} must be {min} to 12 digits", self.pin_name()))
        }
    }
}

/// A device directory.
struct Device {
    dir: PathBuf,
    secret: Zeroizing<String>,
}

impl Device {
    /// Creates a new device directory (refusing one that exists) with a fresh device secret.
    fn create(dir: &Path) -> Result<Self, String> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        if dir.join(STATE_FILE).exists() {
            return Err(format!("{} is an activated device already; use another --dir", dir.display()));
        }
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let secret = OperatorSecret::generate().map_err(|e| e.to_string())?;
        let text = Zeroizing::new(String::from_utf8_lossy(secret.expose()).into_owned());
        let file = dir.join(SECRET_FILE);
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&file)
            .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
            .map_err(|e| format!("{}: {e}", file.display()))?;
        Ok(Device { dir: dir.to_owned(), secret: text })
    }

    /// The device key's store (sealed under the device secret alone: the device signs its
    /// own requests without a PIN, as a phone app does).
    fn device_store(&self) -> Result<Arc<dyn KeyStore>, String> {
        let secret = OperatorSecret::new(self.secret.as_bytes().to_vec()).map_err(|e| e.to_string())?;
        Ok(Arc::new(SoftKeyStore::open_or_create(&self.dir.join("device-key"), &secret).map_err(|e| e.to_string())?))
    }

    /// The key store of one citizen key, unlocked with its PIN.
    fn key_store(&self, keys: &Keys, which: Which, pin: &str) -> Result<Arc<dyn KeyStore>, Unlock> {
        match keys {
            Keys::Soft => {
                let secret = OperatorSecret::new(format!("{}:{pin}", self.secret.as_str()).into_bytes()).map_err(|e| Unlock::Failed(e.to_string()))?;
                let store = SoftKeyStore::open_or_create(&self.dir.join(which.dir()), &secret).map_err(|e| match e {
                    hsm_shim::Error::WrongOperatorSecret(_) => Unlock::WrongPin,
                    other => Unlock::Failed(other.to_string()),
                })?;
                Ok(Arc::new(store))
            }
            Keys::Pkcs11 { module, authentication_token, signature_token } => {
                let token = if which == Which::Authentication { authentication_token } else { signature_token };
                Ok(Arc::new(Pkcs11KeyStore::open(module, token, &Pin::new(pin.to_owned())).map_err(|e| match e {
                    hsm_shim::Error::WrongPin(_) => Unlock::WrongPin,
                    hsm_shim::Error::TokenLocked(_) => Unlock::Locked,
                    other => Unlock::Failed(other.to_string()),
                })?))
            }
        }
    }

    /// Opens an activated device.
    fn open(dir: &Path) -> Result<(Self, State), String> {
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name))
                .map_err(|e| format!("{}: {e} (is this an activated device? hawiya device activate)", dir.join(name).display()))
        };
        let state: State = serde_json::from_str(&read(STATE_FILE)?).map_err(|e| format!("{}: {e}", dir.join(STATE_FILE).display()))?;
        Ok((Device { dir: dir.to_owned(), secret: Zeroizing::new(read(SECRET_FILE)?) }, state))
    }

    /// A signed proof for one request to the server: `{htm, htu, iat, jti}` by the device key.
    fn proof(&self, state: &State, method: &str, path: &str) -> Result<String, Box<dyn std::error::Error>> {
        let store = self.device_store()?;
        let key = store.list()?.into_iter().next().ok_or("the device key is missing")?.key;
        let signer = StoredKeySigner::new(store, key, SignatureAlgorithm::Es256)?;
        let claims = json!({"htm": method, "htu": format!("{}{path}", state.issuer), "iat": idp::unix_now(), "jti": idp::provider::random_token()?});
        let mut header = serde_json::Map::new();
        header.insert("typ".into(), idp::smart_id::DEVICE_PROOF_TYPE.into());
        Ok(hsm_shim::jose::sign_compact(&signer, &state.device_kid, header, claims.to_string().as_bytes())?)
    }

    /// Wrong attempts in a row of one PIN, kept with a MAC under the device secret. The
    /// files are written at activation: a missing file, or one that does not verify, counts
    /// as locked (deleting it does not reset the count).
    fn pin_failures(&self, which: Which) -> u8 {
        match std::fs::read_to_string(self.dir.join(which.counter_file())) {
            Err(_) => PIN_ATTEMPTS,
            Ok(text) => {
                let mut parts = text.trim().splitn(2, ' ');
                match (parts.next().and_then(|n| n.parse::<u8>().ok()), parts.next()) {
                    (Some(n), Some(mac)) if *mac == self.counter_mac(which, n) => n,
                    _ => PIN_ATTEMPTS,
                }
            }
        }
    }

    fn set_pin_failures(&self, which: Which, n: u8) -> Result<(), String> {
        self.write(which.counter_file(), format!("{n} {}\n", self.counter_mac(which, n)).as_bytes())
    }

    fn counter_mac(&self, which: Which, n: u8) -> String {
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, self.secret.as_bytes());
        hex::encode(aws_lc_rs::hmac::sign(&key, format!("{}:{n}", which.counter_file()).as_bytes()).as_ref())
    }

    fn write(&self, name: &str, contents: &[u8]) -> Result<(), String> {
        let path = self.dir.join(name);
        std::fs::write(&path, contents).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// Why a key did not open.
enum Unlock {
    WrongPin,
    Locked,
    Failed(String),
}

impl From<Unlock> for Box<dyn std::error::Error> {
    fn from(u: Unlock) -> Self {
        match u {
            Unlock::WrongPin => "wrong PIN".into(),
            Unlock::Locked => "the PIN is locked".into(),
            Unlock::Failed(e) => e.into(),
        }
    }
}

/// Reads the PINs: from standard input, one per line (`--pin-stdin`), or after a prompt.
struct Pins {
    quiet: bool,
}

impl Pins {
    fn read(&self, which: Which) -> Result<Zeroizing<String>, String> {
        if !self.quiet {
            eprint!("{}: ", which.pin_name());
        }
        let mut line = Zeroizing::new(String::new());
        std::io::stdin().lock().read_line(&mut line).map_err(|e| format!("cannot read {}: {e}", which.pin_name()))?;
        let pin = Zeroizing::new(line.trim_end_matches(['\n', '\r']).to_owned());
        which.check_pin(&pin)?;
        Ok(pin)
    }
}

fn http() -> Result<reqwest::Client, String> {
    idp::backchannel::http_client().map_err(|e| e.to_string())
}

/// POSTs JSON; the server's error description, or the status, on failure.
async fn post(http: &reqwest::Client, url: &str, body: &Value) -> Result<Value, String> {
    let response = http.post(url).json(body).send().await.map_err(|e| format!("{url}: {e}"))?;
    let status = response.status();
    let answer: Value = response.json().await.map_err(|e| format!("{url}: {status}: {e}"))?;
    if !status.is_success() {
        let why = answer.get("error_description").and_then(Value::as_str).unwrap_or("refused");
        return Err(format!("the server refused: {why}"));
    }
    Ok(answer)
}

/// The issuer URL the server's discovery document names.
async fn discovery_issuer(http: &reqwest::Client, server: &str) -> Result<String, String> {
    let url = format!("{server}/.well-known/openid-configuration");
    let doc: Value = http
        .get(&url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| format!("{url}: {e}"))?
        .json()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    doc["issuer"].as_str().map(str::to_owned).ok_or_else(|| format!("{url} names no issuer"))
}

/// The pending request of an opened device, if any.
async fn pending(http: &reqwest::Client, device: &Device, state: &State) -> Result<Option<DeviceRequest>, Box<dyn std::error::Error>> {
    let url = format!("{}/smart-id/device/pending", state.server);
    let response = http.get(&url).header(idp::http::DEVICE_PROOF_HEADER, device.proof(state, "GET", "/smart-id/device/pending")?).send().await?;
    match response.status().as_u16() {
        204 => Ok(None),
        200 => Ok(Some(response.json().await?)),
        status => {
            let body: Value = response.json().await.unwrap_or_default();
            Err(format!("the server refused ({status}): {}", body["error_description"].as_str().unwrap_or("no reason given")).into())
        }
    }
}

/// Sends the device's answer to a request of `kind`; returns the session's new state.
async fn answer(http: &reqwest::Client, device: &Device, state: &State, kind: &DeviceRequest, body: &Value) -> Result<Value, Box<dyn std::error::Error>> {
    let path = match kind {
        DeviceRequest::Login(_) => "/smart-id/device/answer",
        DeviceRequest::Sign(_) => "/smart-id/device/sign",
        DeviceRequest::SignHashes(_) => "/smart-id/device/sign-hashes",
    };
    let url = format!("{}{path}", state.server);
    let proof = device.proof(state, "POST", path)?;
    let response = http.post(&url).header(idp::http::DEVICE_PROOF_HEADER, proof).json(body).send().await?;
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or_default();
    if !status.is_success() {
        return Err(format!("the server refused: {}", answer["error_description"].as_str().unwrap_or("no reason given")).into());
    }
    Ok(answer)
}

/// An answer without a signature (refuse, wrong_code, locked), as every kind of request
/// takes it.
fn outcome(session: &str, outcome: &str) -> Value {
    json!({"session": session, "outcome": outcome})
}

/// Runs a device command.
pub async fn run(command: DeviceCommand) -> CommandResult {
    match command {
        DeviceCommand::Pending { dir } => {
            let (device, state) = Device::open(&dir)?;
            match pending(&http()?, &device, &state).await? {
                None => println!("No pending request."),
                Some(request) => {
                    let (what, code) = describe(&request)?;
                    println!("{what}\nVerification code: {code}");
                }
            }
            Ok(())
        }
        DeviceCommand::Refuse { dir } => {
            let (device, state) = Device::open(&dir)?;
            let http = http()?;
            let request = pending(&http, &device, &state).await?.ok_or("no pending request")?;
            answer(&http, &device, &state, &request, &outcome(request.session(), "refuse")).await?;
            println!("Refused the request of {}.", request.service().en);
            Ok(())
        }
        DeviceCommand::Approve { dir, code, pin_stdin } => {
            let (device, state) = Device::open(&dir)?;
            let http = http()?;
            let request = pending(&http, &device, &state).await?.ok_or("no pending request")?;
            // The device derives the code itself: it never takes the server's word for it.
            let (what, shown) = describe(&request)?;
            println!("{what} Verification code: {shown}");
            let session = request.session().to_owned();
            if let Some(typed) = code
                && typed.trim() != shown
            {
                answer(&http, &device, &state, &request, &outcome(&session, "wrong_code")).await?;
                return Err(format!("the page's code {} is not this request's {shown}: refused", typed.trim()).into());
            }
            let which = match request {
                DeviceRequest::Login(_) => Which::Authentication,
                DeviceRequest::Sign(_) | DeviceRequest::SignHashes(_) => Which::Signature,
            };
            let pin_name = which.pin_name();
            if device.pin_failures(which) >= PIN_ATTEMPTS {
                answer(&http, &device, &state, &request, &outcome(&session, "locked")).await?;
                return Err(format!("{pin_name} is locked after 3 wrong attempts; ask a registration office for a new smart-ID").into());
            }
            let pin = Pins { quiet: pin_stdin }.read(which)?;
            let store = match device.key_store(&state.keys, which, &pin) {
                Ok(store) => store,
                Err(Unlock::WrongPin) => {
                    let failures = device.pin_failures(which).saturating_add(1);
                    device.set_pin_failures(which, failures)?;
                    if failures >= PIN_ATTEMPTS {
                        answer(&http, &device, &state, &request, &outcome(&session, "locked")).await?;
                        return Err(format!("wrong {pin_name}; {pin_name} is now locked").into());
                    }
                    return Err(format!("wrong {pin_name} ({} attempts left)", PIN_ATTEMPTS - failures).into());
                }
                Err(Unlock::Locked) => {
                    answer(&http, &device, &state, &request, &outcome(&session, "locked")).await?;
                    return Err(format!("{pin_name} is locked").into());
                }
                Err(e) => return Err(e.into()),
            };
            device.set_pin_failures(which, 0)?;
            let key = store.list()?.into_iter().find(|k| k.key.label() == which.label()).ok_or("the key is missing from its store")?.key;
            let b64 = |b: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b);
            let approval = match &request {
                DeviceRequest::Login(p) => {
                    let tbs = idp::smart_id::to_be_signed(&p.issuer, &p.session, &p.client_id, &p.challenge, &shown);
                    let signature = store.sign(&key, SignatureAlgorithm::Es256, &tbs)?;
                    let certificate = pem_der(&std::fs::read_to_string(dir.join("authentication.pem"))?)?;
                    serde_json::to_value(idp::smart_id::Answer {
                        session,
                        outcome: "approve".into(),
                        certificate: Some(b64(&certificate)),
                        signature: Some(b64(&signature)),
                    })?
                }
                DeviceRequest::Sign(p) => {
                    let signature = store.sign(&key, SignatureAlgorithm::Es256, &b64std(&p.to_be_signed)?)?;
                    serde_json::to_value(idp::smart_id::Answer { session, outcome: "approve".into(), certificate: None, signature: Some(b64(&signature)) })?
                }
                DeviceRequest::SignHashes(p) => {
                    // Each digest as it is: the tool hashed what it signs (CSC signHash).
                    let hash = idp::csc::HashAlgorithm::from_name(&p.hash_algorithm).ok_or("the server asks for an unknown hash algorithm")?;
                    let mut signatures = Vec::with_capacity(p.hashes.len());
                    for digest in &p.hashes {
                        signatures.push(b64(&store.sign_digest(&key, hash.signature_algorithm(), &b64std(digest)?)?));
                    }
                    serde_json::to_value(idp::csc::HashAnswer { session, outcome: "approve".into(), signatures: Some(signatures) })?
                }
            };
            let result = answer(&http, &device, &state, &request, &approval).await?;
            match (&request, result["state"].as_str()) {
                (DeviceRequest::Login(p), Some("approved")) => {
                    println!("Approved: you are logged in to {}.", p.service.en);
                    Ok(())
                }
                (DeviceRequest::Sign(p), Some("signed")) => {
                    println!("Signed \"{}\" for {}.", p.document_name, p.service.en);
                    Ok(())
                }
                (DeviceRequest::SignHashes(p), Some("approved")) => {
                    println!("Signed {} hash(es) for {}.", p.hashes.len(), p.service.en);
                    Ok(())
                }
                _ => Err(format!("the server did not accept the approval: {}", result["reason"].as_str().unwrap_or("no reason given")).into()),
            }
        }
        DeviceCommand::Activate { dir, server, code, pkcs11_module, authentication_token, signature_token, pin_stdin } => {
            let server = server.trim_end_matches('/').to_owned();
            let http = http()?;
            // Whom the code enrols: the requests name that citizen.
            let identity: Identity = serde_json::from_value(post(&http, &format!("{server}/smart-id/activation/identity"), &json!({"code": code})).await?)
                .map_err(|e| e.to_string())?;
            let keys = match pkcs11_module {
                Some(module) => Keys::Pkcs11 { module, authentication_token, signature_token },
                None if identity.custody == Custody::Hardware => {
                    return Err("this enrolment is for a hardware token: activate with --pkcs11-module (the smart card)".into());
                }
                None => Keys::Soft,
            };
            let pins = Pins { quiet: pin_stdin };
            let (pin1, pin2) = (pins.read(Which::Authentication)?, pins.read(Which::Signature)?);
            if pin1 == pin2 {
                return Err("PIN1 and PIN2 must differ".into());
            }
            let device = Device::create(&dir)?;
            // Whatever fails from here leaves no half-made device behind: the directory goes,
            // and keys made on tokens are destroyed.
            let mut made: Vec<(Arc<dyn KeyStore>, hsm_shim::KeyRef, &str)> = Vec::new();
            let activated = activate(&http, &server, &code, &identity, &device, &keys, [pin1.as_str(), pin2.as_str()], &mut made).await;
            let (activated, device_kid) = match activated {
                Ok(done) => done,
                Err(e) => {
                    for (store, key, label) in made {
                        let _ = store.destroy(&key, label);
                    }
                    let _ = std::fs::remove_dir_all(&dir);
                    return Err(e);
                }
            };
            for (file, field) in [
                ("authentication.pem", "authentication_certificate"),
                ("signature.pem", "signature_certificate"),
                ("authentication-ca.pem", "authentication_ca"),
                ("signing-ca.pem", "signing_ca"),
                ("root.pem", "root"),
            ] {
                device.write(file, activated.get(field).and_then(Value::as_str).unwrap_or_default().as_bytes())?;
            }
            let issuer = discovery_issuer(&http, &server).await?;
            device.set_pin_failures(Which::Authentication, 0)?;
            device.set_pin_failures(Which::Signature, 0)?;
            let state = State { server, issuer, national_id: identity.national_id.clone(), custody: identity.custody, keys, device_kid };
            device.write(STATE_FILE, &serde_json::to_vec_pretty(&state)?)?;
            println!(
                "Activated the smart-ID of {} {} ({}) on {} ({} keys).",
                identity.given_name,
                identity.surname,
                identity.national_id,
                dir.display(),
                identity.custody.name()
            );
            Ok(())
        }
    }
}

/// Makes the keys, asks for the certificates; returns the server's answer and the device
/// key's thumbprint. Every key made is pushed to `made`.
#[allow(clippy::too_many_arguments)]
async fn activate(
    http: &reqwest::Client,
    server: &str,
    code: &str,
    identity: &Identity,
    device: &Device,
    keys: &Keys,
    pins: [&str; 2],
    made: &mut Vec<(Arc<dyn KeyStore>, hsm_shim::KeyRef, &'static str)>,
) -> Result<(Value, String), Box<dyn std::error::Error>> {
    let subject = ca::Subject::NaturalPerson {
        given_name: identity.given_name.clone(),
        surname: identity.surname.clone(),
        national_id: identity.national_id.clone(),
        country: identity.country.clone(),
    };
    let mut csrs = Vec::new();
    for (which, pin) in [(Which::Authentication, pins[0]), (Which::Signature, pins[1])] {
        let store = device.key_store(keys, which, pin)?;
        let key = store.generate(KeySpec::EcP256, which.label())?;
        made.push((Arc::clone(&store), key.clone(), which.label()));
        let signer = StoredKeySigner::new(store, key, SignatureAlgorithm::Es256)?;
        csrs.push(ca::csr::request(&subject, &signer)?);
    }
    let device_store = device.device_store()?;
    let device_key = device_store.generate(KeySpec::EcP256, DEVICE_LABEL)?;
    let mut jwk = hsm_shim::jose::jwk(&device_store.public_key(&device_key)?, "", SignatureAlgorithm::Es256)?;
    let device_kid = hsm_shim::jose::thumbprint(&jwk)?;
    jwk["kid"] = device_kid.clone().into();
    let body = json!({"code": code, "authentication_csr": csrs[0], "signature_csr": csrs[1], "device_key": jwk});
    Ok((post(http, &format!("{server}/smart-id/activation"), &body).await?, device_kid))
}

/// What the device shows for a request — who asks, for what, with which PIN — and the
/// verification code it derives from what it would sign.
fn describe(request: &DeviceRequest) -> Result<(String, String), String> {
    Ok(match request {
        DeviceRequest::Login(p) => {
            let code = idp::smart_id::verification_code(&b64url(&p.challenge)?);
            (format!("{} / {} asks you to log in (PIN1, authentication key).", p.service.ar, p.service.en), code)
        }
        DeviceRequest::Sign(p) => {
            // What an ES256 key signs is hashed with SHA-256; the code comes from that hash.
            let code = idp::smart_id::verification_code(&idp::provider::sha256(&b64std(&p.to_be_signed)?));
            let mut what = format!("{} / {} asks you to sign \"{}\" (PIN2, signing key).", p.service.ar, p.service.en, p.document_name);
            if let Some(text) = &p.display_text {
                what.push_str(&format!("\nMessage from {}: {text}", p.service.en));
            }
            (what, code)
        }
        DeviceRequest::SignHashes(p) => {
            let hashes = p.hashes.iter().map(|h| b64std(h)).collect::<Result<Vec<_>, _>>()?;
            let code = idp::csc::hashes_verification_code(&hashes);
            let mut what = format!("{} / {} asks you to sign {} {} hash(es) (PIN2, signing key).", p.service.ar, p.service.en, hashes.len(), p.hash_algorithm);
            if let Some(text) = &p.description {
                what.push_str(&format!("\nMessage from {}: {text}", p.service.en));
            }
            for h in &hashes {
                what.push_str(&format!("\n  {}", hex::encode(h)));
            }
            (what, code)
        }
    })
}

fn b64std(text: &str) -> Result<Vec<u8>, String> {
    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, text).map_err(|_| "the server sent data to sign that is not base64".to_owned())
}

fn b64url(text: &str) -> Result<Vec<u8>, String> {
    base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, text).map_err(|_| "the server sent a challenge that is not base64url".to_owned())
}

/// The DER of the first PEM block of `text`.
fn pem_der(text: &str) -> Result<Vec<u8>, String> {
    let body: String = text.lines().skip_while(|l| !l.starts_with("-----BEGIN")).skip(1).take_while(|l| !l.starts_with("-----END")).collect();
    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, body).map_err(|_| "the certificate file is not PEM".to_owned())
}
