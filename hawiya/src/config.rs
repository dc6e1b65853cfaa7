//! Configuration: the ceremony file (`ca init --config`) and the data directory's
//! `hawiya.toml`, which `ca init` writes from it and every later command reads.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hsm_shim::KeyStore;
use hsm_shim::pkcs11::{Pin, Pkcs11KeyStore};
use hsm_shim::soft::{OperatorSecret, SoftKeyStore};
use serde::{Deserialize, Serialize};
use store::ephemeral::{EphemeralStore, MemoryStore, RedisStore};
use store::{DurableConfig, DurableStore};

/// The default ceremony, shipped in `deploy/ceremony/default.toml`.
pub const DEFAULT_CEREMONY: &str = include_str!("../../deploy/ceremony/default.toml");

pub(crate) const CONFIG_FILE: &str = "hawiya.toml";
/// The demo's operator secret in the data directory: never in a backup.
pub(crate) const DEMO_SECRET_FILE: &str = "operator-secret";
const PROVIDER_SECRET_FILE: &str = "provider-secret";
const VERSION: u32 = 1;

/// A ceremony file: the ceremony itself and where its keys and records go.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CeremonyFile {
    /// Format version (1).
    pub version: u32,
    /// Names, country, URLs and keys of the hierarchy.
    pub ceremony: ca::ceremony::CeremonyConfig,
    /// Where keys are generated.
    pub key_store: KeyStoreConfig,
    /// Where certificates and the ceremony record are kept.
    pub store: StoreConfig,
}

/// The data directory's configuration.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Format version (1).
    pub version: u32,
    /// Where keys are.
    pub key_store: KeyStoreConfig,
    /// Where records are.
    pub store: StoreConfig,
    /// A policy directory to use instead of the shipped policies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<PathBuf>,
    /// Where sessions, codes and replay caches are (default: in this process's memory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral: Option<EphemeralConfig>,
    /// Reverse proxies whose `X-Forwarded-For` is believed (the per-address login limit
    /// then counts the citizen's address, not the proxy's); `HAWIYA_TRUSTED_PROXIES`
    /// (comma-separated) overrides it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The OpenID Connect issuer (https:// in production), apart from the PKI publication
    /// base written into certificates (the ceremony's `base_url`, plain http://). Default:
    /// the publication base, so that a demo has one address; `hawiya serve --issuer` or
    /// `HAWIYA_ISSUER` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<Issuer>,
    /// Registration officers who may call the RA API, each with the SHA-256 of their token
    /// (`hawiya ra add-officer` writes them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ra_officers: Vec<RaOfficer>,
}

/// The OpenID Connect issuer identifier: an `https://` URL of a host (`http://` for a demo
/// or a test), without query, fragment or credentials; kept without a trailing slash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Issuer(String);

impl Issuer {
    /// The URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Issuer {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let url = s.trim_end_matches('/');
        let bad = || format!("issuer {:?} is not an https:// URL of a host (http:// for a demo) without query, fragment or credentials", s);
        let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://")).ok_or_else(bad)?;
        let host = rest.split(['/', ':']).next().unwrap_or_default();
        if host.is_empty() || !url.bytes().all(|b| b.is_ascii_graphic()) || url.contains(['?', '#', '@', '\\']) {
            return Err(bad());
        }
        Ok(Issuer(url.to_owned()))
    }
}

impl TryFrom<String> for Issuer {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Issuer> for String {
    fn from(i: Issuer) -> Self {
        i.0
    }
}

impl std::fmt::Display for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A registration officer's API credential.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RaOfficer {
    /// Who the officer is (named in the audit trail).
    pub name: OfficerName,
    /// SHA-256 of the officer's bearer token.
    pub token_sha256: TokenSha256,
}

/// A registration officer's name: 1 to 64 characters, none of them control characters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub struct OfficerName(String);

/// Read from `hawiya.toml` only, so a refusal names the key (TOML errors give the line).
impl<'de> Deserialize<'de> for OfficerName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(|e| serde::de::Error::custom(format!("ra_officers.name: {e}")))
    }
}

impl OfficerName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for OfficerName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().is_empty() || s.chars().count() > 64 || s.chars().any(char::is_control) {
            return Err(format!("an officer's name is 1 to 64 characters without control characters, not {:?}", s.chars().take(64).collect::<String>()));
        }
        Ok(OfficerName(s.to_owned()))
    }
}

impl From<OfficerName> for String {
    fn from(n: OfficerName) -> Self {
        n.0
    }
}

impl std::fmt::Display for OfficerName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The SHA-256 of an officer's bearer token, written as 64 hexadecimal digits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TokenSha256([u8; 32]);

impl TokenSha256 {
    /// The hash of `token`.
    pub fn of(token: &str) -> Self {
        let mut hash = [0u8; 32];
        // A SHA-256 digest is 32 bytes.
        hash.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes()).as_ref());
        TokenSha256(hash)
    }

    /// Whether `token` hashes to this, compared in constant time.
    pub fn matches(&self, token: &str) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(&self.0, &Self::of(token).0).is_ok()
    }
}

impl TryFrom<String> for TokenSha256 {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        let mut hash = [0u8; 32];
        match hex::decode_to_slice(&s, &mut hash) {
            Ok(()) => Ok(TokenSha256(hash)),
            Err(_) if s.is_empty() => {
                Err("ra_officers.token_sha256 is empty; it is the SHA-256 of the officer's token, 64 hexadecimal digits (hawiya ra add-officer writes it)"
                    .into())
            }
            Err(_) => Err("ra_officers.token_sha256 is not 64 hexadecimal digits (the SHA-256 of the officer's token; hawiya ra add-officer writes it)".into()),
        }
    }
}

impl From<TokenSha256> for String {
    fn from(h: TokenSha256) -> Self {
        hex::encode(h.0)
    }
}

/// The ephemeral store: `memory` for one process, `redis` for replicas that act as one.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum EphemeralConfig {
    /// In this process only.
    Memory,
    /// A Redis server shared by every replica; `HAWIYA_REDIS_URL`, or the file
    /// `HAWIYA_REDIS_URL_FILE` names, overrides `url`.
    Redis {
        /// `rediss://host:port/db?cacert=/etc/hawiya/redis-ca.pem`: TLS, the server's
        /// certificate verified (chain and host name) against that CA file (`cacert=system`:
        /// the system's roots). `redis://host:port/db` (plaintext) is accepted only to a
        /// loopback address or `localhost`; `redis+unix:///path` for a Unix socket.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
        /// Prefix of every key (default `hawiya:`), so that deployments can share a server;
        /// `HAWIYA_REDIS_PREFIX` overrides it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prefix: Option<String>,
    },
}

/// The key store.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum KeyStoreConfig {
    /// Sealed key files in `<data>/keys` (or `dir`).
    Soft {
        /// The key directory, relative to the data directory unless absolute.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dir: Option<PathBuf>,
    },
    /// A PKCS#11 token.
    Pkcs11 {
        /// The module (shared library) path.
        module: PathBuf,
        /// The token label.
        token: String,
    },
}

/// The durable store.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum StoreConfig {
    /// `<data>/hawiya.db` (or `path`).
    Sqlite {
        /// The database file, relative to the data directory unless absolute.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<PathBuf>,
    },
    /// PostgreSQL; `HAWIYA_DATABASE_URL`, or the file `HAWIYA_DATABASE_URL_FILE` names,
    /// overrides `url` (keep passwords out of hawiya.toml).
    Postgres {
        /// libpq-style connection string or URL. TLS follows libpq's `sslmode`
        /// (`verify-full` when absent, `verify-ca`, `require` = the chain only; `disable` for
        /// plaintext, which must be said; `allow` and `prefer` are refused) and `sslrootcert`
        /// (the CA's PEM file, or `system`), needed by every mode but `disable`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
        /// Connections to open (default 4).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        connections: Option<usize>,
    },
}

/// A configuration problem, with the file it is in.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn parse<T: serde::de::DeserializeOwned>(name: &str, text: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1).unwrap_or(0);
        ConfigError(format!("{name}:{line}: {}", e.message().trim()))
    })
}

impl CeremonyFile {
    /// Reads a ceremony file, or the default ceremony when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let (name, text) = match path {
            Some(p) => (p.display().to_string(), std::fs::read_to_string(p).map_err(|e| ConfigError(format!("{}: {e}", p.display())))?),
            None => ("deploy/ceremony/default.toml".to_owned(), DEFAULT_CEREMONY.to_owned()),
        };
        let file: CeremonyFile = parse(&name, &text)?;
        if file.version != VERSION {
            return Err(ConfigError(format!("{name}: unsupported version {} (expected {VERSION})", file.version)));
        }
        Ok(file)
    }
}

/// A data directory: its configuration and how to open what it names.
#[derive(Debug)]
pub struct DataDir {
    /// The directory.
    pub path: PathBuf,
    /// Its `hawiya.toml`.
    pub config: DataConfig,
}

impl DataDir {
    /// Whether `path` holds a Hawiya configuration.
    pub fn exists(path: &Path) -> bool {
        path.join(CONFIG_FILE).exists()
    }

    /// Reads `<path>/hawiya.toml`.
    pub fn open(path: &Path) -> Result<Self, ConfigError> {
        let file = path.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&file).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                ConfigError(format!("{} has no {CONFIG_FILE}: run `hawiya ca init --data {}` first", path.display(), path.display()))
            } else {
                ConfigError(format!("{}: {e}", file.display()))
            }
        })?;
        let config: DataConfig = parse(&file.display().to_string(), &text)?;
        if config.version != VERSION {
            return Err(ConfigError(format!("{}: unsupported version {}", file.display(), config.version)));
        }
        Ok(DataDir { path: path.to_owned(), config })
    }

    /// A data directory about to be created: nothing is written until [`DataDir::save`].
    pub fn new(path: &Path, key_store: KeyStoreConfig, store: StoreConfig) -> Self {
        DataDir {
            path: path.to_owned(),
            config: DataConfig {
                version: VERSION,
                key_store,
                store,
                policies: None,
                ephemeral: None,
                trusted_proxies: Vec::new(),
                issuer: None,
                ra_officers: Vec::new(),
            },
        }
    }

    /// Writes the configuration; refuses to overwrite one.
    pub fn save(&self) -> Result<(), ConfigError> {
        let path = &self.path;
        let io = |e: std::io::Error| ConfigError(format!("{}: {e}", path.display()));
        std::fs::create_dir_all(path).map_err(io)?;
        let text = toml::to_string(&self.config).map_err(|e| ConfigError(e.to_string()))?;
        let header = "# Written by `hawiya ca init`: where this deployment's keys and records are.\n";
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path.join(CONFIG_FILE))
            .and_then(|mut f| std::io::Write::write_all(&mut f, format!("{header}{text}").as_bytes()))
            .map_err(io)
    }

    /// Rewrites an existing configuration (written whole to a temporary file, then renamed).
    pub fn update(&self) -> Result<(), ConfigError> {
        let file = self.path.join(CONFIG_FILE);
        let temporary = self.path.join(format!(".{CONFIG_FILE}.new"));
        let io = |e: std::io::Error| ConfigError(format!("{}: {e}", file.display()));
        let text = toml::to_string(&self.config).map_err(|e| ConfigError(e.to_string()))?;
        let header = "# Written by `hawiya ca init` and `hawiya ra add-officer`: where this deployment's keys and records are.\n";
        std::fs::write(&temporary, format!("{header}{text}")).map_err(io)?;
        std::fs::rename(&temporary, &file).map_err(io)
    }

    fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() { p.to_owned() } else { self.path.join(p) }
    }

    /// Writes a fresh demo operator secret into the data directory (mode 0600). Demo only:
    /// production keeps the secret away from the keys it protects.
    #[cfg(feature = "demo")]
    pub fn create_demo_secret(path: &Path) -> Result<(), ConfigError> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = path.join(DEMO_SECRET_FILE);
        if file.exists() {
            return Ok(());
        }
        let secret = OperatorSecret::generate().map_err(|e| ConfigError(e.to_string()))?;
        std::fs::create_dir_all(path).map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&file)
            .and_then(|mut f| std::io::Write::write_all(&mut f, secret.expose()))
            .map_err(|e| ConfigError(format!("{}: {e}", file.display())))
    }

    /// Opens the key store (creating a soft store on first use).
    pub fn key_store(&self) -> Result<Arc<dyn KeyStore>, ConfigError> {
        let err = |e: hsm_shim::Error| ConfigError(e.to_string());
        match &self.config.key_store {
            KeyStoreConfig::Soft { dir } => {
                let secret = match OperatorSecret::from_env().map_err(err)? {
                    Some(s) => s,
                    None => {
                        let demo = self.path.join(DEMO_SECRET_FILE);
                        if !demo.exists() {
                            return Err(ConfigError(format!(
                                "no operator secret: set {} or {} (the soft key store is sealed with it)",
                                OperatorSecret::ENV,
                                OperatorSecret::ENV_FILE
                            )));
                        }
                        OperatorSecret::from_file(&demo).map_err(err)?
                    }
                };
                let dir = self.resolve(dir.as_deref().unwrap_or(Path::new("keys")));
                Ok(Arc::new(SoftKeyStore::open_or_create(&dir, &secret).map_err(err)?))
            }
            KeyStoreConfig::Pkcs11 { module, token } => {
                let pin = Pin::from_env().map_err(err)?;
                Ok(Arc::new(Pkcs11KeyStore::open(module, token, &pin).map_err(err)?))
            }
        }
    }

    /// The SQLite database file, when the store is SQLite.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        match &self.config.store {
            StoreConfig::Sqlite { path } => Some(self.resolve(path.as_deref().unwrap_or(Path::new("hawiya.db")))),
            StoreConfig::Postgres { .. } => None,
        }
    }

    /// The soft key store's directory, when keys are in one.
    pub fn soft_key_dir(&self) -> Option<PathBuf> {
        match &self.config.key_store {
            KeyStoreConfig::Soft { dir } => Some(self.resolve(dir.as_deref().unwrap_or(Path::new("keys")))),
            KeyStoreConfig::Pkcs11 { .. } => None,
        }
    }

    /// Opens the durable store.
    pub async fn store(&self) -> Result<Arc<dyn DurableStore>, ConfigError> {
        let store = self.store_unrecorded().await?;
        // Whatever a command does to this store from now on is in its audit log.
        crate::logging::start_audit(store.clone());
        Ok(store)
    }

    /// Opens the durable store without recording this process's audit events in it (a
    /// restore checks a store before it is in place).
    pub async fn store_unrecorded(&self) -> Result<Arc<dyn DurableStore>, ConfigError> {
        let config = match &self.config.store {
            StoreConfig::Sqlite { path } => DurableConfig::Sqlite { path: self.resolve(path.as_deref().unwrap_or(Path::new("hawiya.db"))) },
            StoreConfig::Postgres { url, connections } => DurableConfig::Postgres {
                url: setting("HAWIYA_DATABASE_URL", |n| std::env::var_os(n))?
                    .or_else(|| url.clone())
                    .ok_or_else(|| ConfigError("the PostgreSQL store needs `url` in hawiya.toml, HAWIYA_DATABASE_URL or HAWIYA_DATABASE_URL_FILE".into()))?,
                connections: connections.unwrap_or(4),
            },
        };
        store::open(&config).await.map_err(|e| ConfigError(e.to_string()))
    }

    /// Opens the ephemeral store. `HAWIYA_REDIS_URL` selects Redis even without a
    /// configuration entry, so that replicas of one data directory can share one.
    pub async fn ephemeral(&self) -> Result<Arc<dyn EphemeralStore>, ConfigError> {
        let env = setting("HAWIYA_REDIS_URL", |n| std::env::var_os(n))?;
        let configured_prefix = match &self.config.ephemeral {
            Some(EphemeralConfig::Redis { prefix, .. }) => prefix.clone(),
            _ => None,
        };
        let url = match (&self.config.ephemeral, env) {
            (_, Some(url)) => Some(url),
            (Some(EphemeralConfig::Redis { url, .. }), None) => Some(
                url.clone()
                    .ok_or_else(|| ConfigError("the Redis ephemeral store needs `url` in hawiya.toml, HAWIYA_REDIS_URL or HAWIYA_REDIS_URL_FILE".into()))?,
            ),
            (Some(EphemeralConfig::Memory) | None, None) => None,
        };
        let prefix = std::env::var("HAWIYA_REDIS_PREFIX").ok().or(configured_prefix).unwrap_or_else(|| "hawiya:".into());
        Ok(match url {
            Some(url) => {
                let store = RedisStore::connect(&url, &prefix).await.map_err(|e| ConfigError(e.to_string()))?;
                tracing::info!(%prefix, "ephemeral state in Redis");
                Arc::new(store)
            }
            None => Arc::new(MemoryStore::new()),
        })
    }

    /// The OpenID Connect provider's secret: `<data>/provider-secret` (0600), made on first
    /// use. It salts pairwise subject identifiers and keys refresh tokens' MAC, so every
    /// replica must read the same file, or subjects change and refresh tokens fail.
    pub fn provider_secret(&self) -> Result<Vec<u8>, ConfigError> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = self.path.join(PROVIDER_SECRET_FILE);
        let io = |e: std::io::Error| ConfigError(format!("{}: {e}", file.display()));
        match std::fs::read(&file) {
            Ok(salt) if salt.len() >= 32 => return Ok(salt),
            Ok(_) => return Err(ConfigError(format!("{}: shorter than 32 bytes", file.display()))),
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
            Err(_) => {}
        }
        // Data directories made before the secret was renamed keep their pairwise subjects.
        let old = self.path.join("pairwise-salt");
        if old.exists() {
            std::fs::rename(&old, &file).map_err(io)?;
            return self.provider_secret();
        }
        let salt = idp::provider::random_token().map_err(|e| ConfigError(e.to_string()))?.into_bytes();
        match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&file) {
            Ok(mut f) => std::io::Write::write_all(&mut f, &salt).and_then(|()| f.sync_all()).map_err(io)?,
            // Another process made it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return self.provider_secret(),
            Err(e) => return Err(io(e)),
        }
        Ok(salt)
    }

    /// The OpenID Connect issuer: `chosen` (`serve --issuer`, `HAWIYA_ISSUER`), else
    /// `issuer` in `hawiya.toml`, else the PKI publication base `publication`.
    pub fn issuer(&self, chosen: Option<Issuer>, publication: &str) -> Result<Issuer, ConfigError> {
        match chosen.or_else(|| self.config.issuer.clone()) {
            Some(issuer) => Ok(issuer),
            None => publication.parse().map_err(|e| ConfigError(format!("the ceremony's base_url as issuer: {e}"))),
        }
    }

    /// The reverse proxies whose `X-Forwarded-For` is believed.
    pub fn trusted_proxies(&self) -> Result<Vec<std::net::IpAddr>, ConfigError> {
        match std::env::var("HAWIYA_TRUSTED_PROXIES") {
            Ok(list) => list
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(|a| a.parse().map_err(|_| ConfigError(format!("HAWIYA_TRUSTED_PROXIES: {a:?} is not an IP address"))))
                .collect(),
            Err(_) => Ok(self.config.trusted_proxies.clone()),
        }
    }

    /// The policies: the configured directory or the shipped ones.
    pub fn policies(&self) -> Result<Arc<policies::Policies>, ConfigError> {
        let loaded = match &self.config.policies {
            Some(dir) => policies::Policies::load(&self.resolve(dir)),
            None => policies::Policies::shipped(),
        };
        loaded.map(Arc::new).map_err(|e| ConfigError(e.to_string()))
    }
}

/// A setting that may carry a password (a PostgreSQL or Redis URL): the variable `name`
/// itself, else the file named by `<name>_FILE` (a systemd credential, a compose or
/// Kubernetes secret), its trailing newlines dropped; `None` when neither is set. `var` reads
/// the environment (the tests hand it a map). Setting both is refused: one of them would be
/// silently ignored.
fn setting(name: &str, var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Result<Option<String>, ConfigError> {
    let file_var = format!("{name}_FILE");
    let not_utf8 = |what: &str| ConfigError(format!("{what} is not UTF-8"));
    match (var(name), var(&file_var)) {
        (Some(_), Some(_)) => Err(ConfigError(format!("both {name} and {file_var} are set: set one"))),
        (Some(value), None) => value.into_string().map(Some).map_err(|_| not_utf8(name)),
        (None, Some(path)) => {
            let text = std::fs::read(&path).map_err(|e| ConfigError(format!("{file_var}: {}: {e}", Path::new(&path).display())))?;
            let text = String::from_utf8(text).map_err(|_| not_utf8(&format!("{file_var}: {}", Path::new(&path).display())))?;
            let value = text.trim_end_matches(['\n', '\r']);
            if value.is_empty() {
                return Err(ConfigError(format!("{file_var}: {} is empty", Path::new(&path).display())));
            }
            Ok(Some(value.to_owned()))
        }
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_read_from_its_variable_or_the_file_its_file_variable_names() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("database-url");
        std::fs::write(&file, "host=db user=hawiya password=s3cret\n").expect("write");
        let env = |pairs: &[(&str, &std::ffi::OsStr)]| {
            let pairs: Vec<(String, std::ffi::OsString)> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
            move |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        };
        let url = "host=db user=hawiya";
        assert_eq!(setting("HAWIYA_DATABASE_URL", env(&[])).expect("unset"), None);
        assert_eq!(setting("HAWIYA_DATABASE_URL", env(&[("HAWIYA_DATABASE_URL", url.as_ref())])).expect("variable").as_deref(), Some(url));
        assert_eq!(
            setting("HAWIYA_DATABASE_URL", env(&[("HAWIYA_DATABASE_URL_FILE", file.as_os_str())])).expect("file").as_deref(),
            Some("host=db user=hawiya password=s3cret"),
            "the trailing newline is dropped"
        );
        let e =
            setting("HAWIYA_DATABASE_URL", env(&[("HAWIYA_DATABASE_URL", url.as_ref()), ("HAWIYA_DATABASE_URL_FILE", file.as_os_str())])).expect_err("both");
        assert_eq!(e.to_string(), "both HAWIYA_DATABASE_URL and HAWIYA_DATABASE_URL_FILE are set: set one");
        let missing = dir.path().join("missing");
        let e = setting("HAWIYA_REDIS_URL", env(&[("HAWIYA_REDIS_URL_FILE", missing.as_os_str())])).expect_err("missing");
        assert!(e.to_string().starts_with(&format!("HAWIYA_REDIS_URL_FILE: {}: No such file", missing.display())), "{e}");
        std::fs::write(&file, "\n").expect("write");
        let e = setting("HAWIYA_REDIS_URL", env(&[("HAWIYA_REDIS_URL_FILE", file.as_os_str())])).expect_err("empty");
        assert_eq!(e.to_string(), format!("HAWIYA_REDIS_URL_FILE: {} is empty", file.display()));
        assert!(!e.to_string().contains("s3cret"), "the value is never in an error");
    }

    #[test]
    fn bad_officer_entries_are_refused_with_file_line_key_and_reason() {
        let config = |officer: &str| format!("version = 1\n\n[key_store]\nkind = \"soft\"\n\n[store]\nkind = \"sqlite\"\n\n[[ra_officers]]\n{officer}\n");
        let good = format!("name = \"amal\"\ntoken_sha256 = \"{}\"", "ab".repeat(32));
        let parsed: DataConfig = parse("/d/hawiya.toml", &config(&good)).expect("a good officer");
        assert_eq!(parsed.ra_officers[0].name.as_str(), "amal");
        assert!(TokenSha256::of("a token").matches("a token") && !TokenSha256::of("a token").matches("another token"));
        for (officer, expected) in [
            ("name = \"amal\"\ntoken_sha256 = \"\"", "/d/hawiya.toml:11: ra_officers.token_sha256 is empty"),
            ("name = \"amal\"\ntoken_sha256 = \"abc\"", "/d/hawiya.toml:11: ra_officers.token_sha256 is not 64 hexadecimal digits"),
            (&format!("name = \"\"\ntoken_sha256 = \"{}\"", "ab".repeat(32)), "/d/hawiya.toml:10: ra_officers.name: an officer's name is 1 to 64"),
        ] {
            let e = parse::<DataConfig>("/d/hawiya.toml", &config(officer)).expect_err("refused").to_string();
            assert!(e.starts_with(expected), "{e}");
        }
    }

    #[test]
    fn the_issuer_is_chosen_then_configured_then_the_publication_base() {
        let mut data = DataDir::new(Path::new("/nonexistent"), KeyStoreConfig::Soft { dir: None }, StoreConfig::Sqlite { path: None });
        let issuer = |s: &str| s.parse::<Issuer>().expect("an issuer");
        assert_eq!(data.issuer(None, "http://pki.hawiya.jo").expect("default"), issuer("http://pki.hawiya.jo"));
        data.config.issuer = Some(issuer("https://id.hawiya.jo/"));
        assert_eq!(data.issuer(None, "http://pki.hawiya.jo").expect("configured").as_str(), "https://id.hawiya.jo");
        assert_eq!(data.issuer(Some(issuer("https://login.hawiya.jo")), "http://pki.hawiya.jo").expect("chosen"), issuer("https://login.hawiya.jo"));
        for bad in [
            "id.hawiya.jo",
            "ftp://id.hawiya.jo",
            "https://",
            "https://id.hawiya.jo/?x",
            "https://id.hawiya.jo/#x",
            "https://a@id.hawiya.jo",
            "https://id hawiya.jo",
        ] {
            let e = bad.parse::<Issuer>().expect_err(bad);
            assert!(e.starts_with(&format!("issuer {bad:?} is not an https:// URL")), "{e}");
        }
        let parsed: DataConfig =
            parse("/d/hawiya.toml", "version = 1\nissuer = \"https://id.hawiya.jo\"\n[key_store]\nkind = \"soft\"\n[store]\nkind = \"sqlite\"\n")
                .expect("parsed");
        assert_eq!(parsed.issuer, Some(issuer("https://id.hawiya.jo")));
        let e = parse::<DataConfig>("/d/hawiya.toml", "version = 1\nissuer = \"id.hawiya.jo\"\n[key_store]\nkind = \"soft\"\n[store]\nkind = \"sqlite\"\n")
            .expect_err("refused");
        assert!(e.to_string().starts_with("/d/hawiya.toml:2: issuer \"id.hawiya.jo\" is not an https:// URL"), "{e}");
    }

    #[test]
    fn the_provider_secret_is_made_once_and_an_older_pairwise_salt_is_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("hawiya-provider-secret-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let data = DataDir::new(&dir, KeyStoreConfig::Soft { dir: None }, StoreConfig::Sqlite { path: None });
        let first = data.provider_secret().expect("made");
        assert!(first.len() >= 32);
        assert_eq!(data.provider_secret().expect("read"), first, "made once");
        let file = dir.join(PROVIDER_SECRET_FILE);
        assert_eq!(std::fs::metadata(&file).expect("file").permissions().mode() & 0o777, 0o600);
        // A data directory from before the rename: its salt becomes the secret.
        std::fs::remove_file(&file).expect("remove");
        std::fs::write(dir.join("pairwise-salt"), [7u8; 40]).expect("old salt");
        assert_eq!(data.provider_secret().expect("renamed"), vec![7u8; 40]);
        assert!(!dir.join("pairwise-salt").exists() && file.exists());
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
