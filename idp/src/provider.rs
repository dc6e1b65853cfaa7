//! The provider: the state every protocol action works on (settings, policies, stores,
//! signing keys, caches, the throttle) and the lookups they share (clients, citizens,
//! levels). The actions themselves live in their own modules (see the crate docs).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use policies::{LevelName, Policies};
use store::ephemeral::EphemeralStore;
use store::{CitizenRecord, DurableStore};

use crate::cache::ShortCache;
use crate::clients::{self, Client};
use crate::credentials::PasswordHasher;
use crate::keys::SigningKeys;
use crate::metrics::Counters;
use crate::throttle::{Limits, Throttle};
use crate::token::refresh_token::RefreshTokens;
use crate::{IdpError, Settings};

/// A random token: 256 bits, base64url.
pub fn random_token() -> Result<String, IdpError> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| IdpError::Crypto("random"))?;
    Ok(B64.encode(bytes))
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data).as_ref().to_vec()
}

/// The OpenID Connect provider.
pub struct Provider {
    pub(crate) settings: Settings,
    pub(crate) policies: Arc<Policies>,
    pub(crate) durable: Arc<dyn DurableStore>,
    pub(crate) ephemeral: Arc<dyn EphemeralStore>,
    pub(crate) keys: SigningKeys,
    pub(crate) hasher: Arc<PasswordHasher>,
    pub(crate) refresh_tokens: RefreshTokens,
    pub(crate) hashing: crate::admission::Gate,
    pub(crate) counters: Counters,
    pub(crate) clients: ShortCache<Client>,
    pub(crate) citizens: ShortCache<CitizenRecord>,
    pub(crate) account: Option<Arc<Client>>,
    pub(crate) sign: Option<Arc<Client>>,
    pub(crate) http: reqwest::Client,
    pub(crate) smart_id: Option<crate::smart_id::SmartId>,
    pub(crate) signing: Option<crate::signing::Signing>,
    pub(crate) validator: Option<Arc<dyn crate::validation::Validator>>,
    /// Validations running at once: at most one per core, the rest wait.
    pub(crate) validations: Arc<tokio::sync::Semaphore>,
    pub(crate) throttle: Throttle,
    /// Woken when this replica enqueues a delivery, so its worker posts it at once.
    pub(crate) deliveries_due: tokio::sync::Notify,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider").field("issuer", &self.settings.issuer).finish_non_exhaustive()
    }
}

/// The provider's own client: the citizen's account page (`/account`), which logs in
/// through the ordinary authorization flow and then uses the SSO session itself.
pub const ACCOUNT_CLIENT: &str = "hawiya-account";

/// The provider's own pages that log in through the ordinary authorization flow and then
/// use the SSO session itself: the account page (any level) and the signing page (the
/// level of the signing policy, so a session below it steps up).
fn own_client(id: &str, name: policies::Localized, page: &str, min_level: policies::AssuranceLevel, issuer: &str) -> Option<Client> {
    let registration = clients::Registration {
        redirect_uris: vec![format!("{issuer}{page}")],
        post_logout_redirect_uris: Vec::new(),
        backchannel_logout_uri: None,
        token_endpoint_auth_method: clients::AuthMethod::None,
        client_secret_sha256: None,
        jwks: None,
        jwks_uri: None,
        sector_identifier_uri: None,
        request_uris: Vec::new(),
        id_token_signed_response_alg: "ES256".into(),
        name: None,
    };
    // Its one redirect URI is the issuer's own page: no registration checks to pass.
    let id: policies::ClientId = id.parse().ok()?;
    let service = policies::Service {
        client_id: id.clone(),
        name,
        min_level,
        scopes: vec!["openid".into()],
        claims: vec!["sub".into()],
        national_id: false,
        consent_required: false,
        public_subject: false,
        require_pkce: true,
        resource_servers: Vec::new(),
        validation_policy: None,
        registration: None,
    };
    let sector = url::Url::parse(issuer).ok()?.host_str()?.to_owned();
    Some(Client { id, registration, service, id_token_alg: hsm_shim::SignatureAlgorithm::Es256, sector })
}

/// How long a client's registration, or a citizen's record on the token and userinfo
/// endpoints, is used as read before it is read again.
pub const RECORD_CACHE: Duration = Duration::from_secs(5);

impl Provider {
    /// A provider on its stores and keys.
    pub fn new(
        settings: Settings,
        policies: Arc<Policies>,
        durable: Arc<dyn DurableStore>,
        ephemeral: Arc<dyn EphemeralStore>,
        keys: SigningKeys,
    ) -> Result<Self, IdpError> {
        let http = crate::backchannel::http_client()?;
        let refresh_tokens = RefreshTokens::new(&settings.secret);
        let account_name = policies::Localized { ar: "حسابي في هوية".into(), en: "My Hawiya account".into() };
        let lowest = policies.levels().first().map(|l| l.level.clone()).ok_or_else(|| IdpError::Corrupt("no level of assurance".into()))?;
        let account = own_client(ACCOUNT_CLIENT, account_name, "/account", lowest, &settings.issuer).map(Arc::new);
        let sign_name = policies::Localized { ar: "التوقيع الإلكتروني في هوية".into(), en: "Hawiya e-signature".into() };
        let sign_level = policies.signing().min_level.clone();
        let sign = own_client(crate::signing::SIGN_CLIENT, sign_name, "/sign", sign_level, &settings.issuer).map(Arc::new);
        Ok(Provider {
            policies,
            durable,
            ephemeral,
            keys,
            hasher: Arc::new(PasswordHasher::new()?),
            refresh_tokens,
            hashing: crate::admission::Gate::new(crate::cores(), settings.login_queue),
            counters: Counters::default(),
            clients: ShortCache::new(RECORD_CACHE, 10_000),
            citizens: ShortCache::new(RECORD_CACHE, 100_000),
            account,
            sign,
            http,
            smart_id: None,
            signing: None,
            validator: None,
            validations: Arc::new(tokio::sync::Semaphore::new(crate::cores())),
            throttle: Throttle::new(Limits::default(), &settings.secret),
            deliveries_due: tokio::sync::Notify::new(),
            settings,
        })
    }

    /// Enables smart-ID logins.
    pub fn with_smart_id(mut self, smart_id: crate::smart_id::SmartId) -> Self {
        let (citizen, address) = smart_id.limits;
        let mut limits = *self.throttle.limits();
        limits.smart_id_citizen.max = citizen;
        limits.smart_id_address.max = address;
        self.throttle = Throttle::new(limits, &self.settings.secret);
        self.smart_id = Some(smart_id);
        self
    }

    /// Enables e-signatures with the smart-ID signing key, made by `signing`'s maker.
    pub fn with_signing(mut self, signing: crate::signing::Signing) -> Self {
        self.signing = Some(signing);
        self
    }

    /// The issuer identifier.
    pub fn issuer(&self) -> &str {
        &self.settings.issuer
    }

    /// The policies the provider applies.
    pub fn policies(&self) -> &Policies {
        &self.policies
    }

    /// The password hasher (for registering citizens).
    pub fn hasher(&self) -> &PasswordHasher {
        &self.hasher
    }

    /// Deletes the refresh-token families that have expired (run now and then by the
    /// server); returns how many.
    pub async fn purge_expired(&self, now: i64) -> Result<u64, IdpError> {
        Ok(self.durable.purge_refresh_families(now).await?)
    }

    /// Writes the provider's metric families (Prometheus' text format).
    pub fn metrics(&self, e: &mut telemetry::Exposition) {
        crate::metrics::render(&self.counters, self.hasher.checks(), e)
    }

    /// The signing keys.
    pub fn keys(&self) -> &SigningKeys {
        &self.keys
    }

    /// The client with that id, if any: declared in its service policy file, or registered
    /// with `hawiya client add`. Registrations are read and checked once per
    /// [`RECORD_CACHE`]: a client removed or changed by another process takes effect within
    /// that time.
    pub async fn client(&self, id: &str) -> Result<Option<Arc<Client>>, IdpError> {
        if id == ACCOUNT_CLIENT {
            return Ok(self.account.clone());
        }
        if id == crate::signing::SIGN_CLIENT {
            return Ok(self.sign.clone());
        }
        self.clients
            .get_or_read(id, || async {
                if let Some(declared) = self.policies.service(id).and_then(|s| Client::declared(s, &self.policies)) {
                    return declared.map(Some);
                }
                self.durable.client(id).await?.map(|r| Client::from_record(&r, &self.policies)).transpose()
            })
            .await
    }

    /// The citizen a token was issued for, read at most once per [`RECORD_CACHE`].
    pub(crate) async fn token_citizen(&self, id: &str) -> Result<Option<Arc<CitizenRecord>>, IdpError> {
        self.citizens.get_or_read(id, || async { Ok(self.durable.citizen_by_id(id).await?) }).await
    }

    pub(crate) fn level(&self, name: &LevelName) -> Result<&policies::Level, IdpError> {
        self.policies.level_named(name).ok_or_else(|| IdpError::Corrupt(format!("unknown level {name}")))
    }
}
