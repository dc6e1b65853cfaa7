//! What the OpenID Connect provider keeps durably: citizens, relying parties, consents and
//! refresh tokens.
//!
//! The store indexes these by what the provider looks them up by and keeps the rest as
//! documents the provider defines (a citizen's profile, a client's registration, what a
//! refresh token grants): the provider owns their meaning, the store their durability and
//! the atomicity of refresh-token rotation.

use crate::StoreError;

/// A citizen as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct CitizenRecord {
    /// An opaque, stable identifier (the public `sub`, the input of pairwise ones).
    pub id: String,
    /// The national identity number.
    pub national_id: String,
    /// Names, birthdate and contact data: a JSON document the provider defines.
    pub profile: String,
    /// The PHC string of the password hash.
    pub password_hash: String,
    /// The TOTP secret (base32), once enrolled.
    pub totp_secret: Option<String>,
    /// When the record was made, Unix seconds.
    pub created_at: i64,
}

impl std::fmt::Debug for CitizenRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Neither the hash nor the TOTP secret is printed.
        f.debug_struct("CitizenRecord").field("id", &self.id).field("national_id", &self.national_id).finish_non_exhaustive()
    }
}

/// A relying party as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientRecord {
    /// The client id.
    pub client_id: String,
    /// Its registration (redirect URIs, keys, authentication method, hashed secret, …): a
    /// JSON document the provider defines.
    pub registration: String,
    /// When it was registered, Unix seconds.
    pub created_at: i64,
}

/// A citizen's consent to release claims to a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsentRecord {
    /// The citizen's id.
    pub citizen_id: String,
    /// The client.
    pub client_id: String,
    /// What was consented to (scopes and claims): a JSON document the provider defines.
    pub grant: String,
    /// When, Unix seconds.
    pub granted_at: i64,
}

/// A refresh-token family: what one authorization granted, and the tokens rotated from it.
///
/// Only one token of a family is live at a time, the one of its current `generation`.
/// Tokens name their family and generation under the provider's MAC, so the store keeps
/// neither tokens nor their hashes, and a rotation rewrites one row in place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshFamily {
    /// The family's random identifier.
    pub family: String,
    /// The client it was issued to; no other client may use it.
    pub client_id: String,
    /// The citizen's id.
    pub citizen_id: String,
    /// What it grants (scopes, claims, level, session): a JSON document the provider defines.
    pub grant: String,
    /// The generation of the live token: 0 when issued, one more at every rotation.
    pub generation: i64,
    /// When the family began, Unix seconds.
    pub issued_at: i64,
    /// When its live token stops working, Unix seconds.
    pub expires_at: i64,
    /// When the family ends, however often it is rotated: `expires_at` never passes it.
    pub ends_at: i64,
    /// Whether it has been revoked.
    pub revoked: bool,
}

/// A key the provider signs with, and when it may sign.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningKeyRecord {
    /// The JWK key id.
    pub kid: String,
    /// What it signs (`idp-signing`).
    pub purpose: String,
    /// Its URI in the key store.
    pub key: String,
    /// The JOSE algorithm it signs with.
    pub algorithm: String,
    /// Its public JWK (JSON).
    pub public_jwk: String,
    /// When it was made (and published), Unix seconds.
    pub created_at: i64,
    /// From when it signs, Unix seconds: after relying parties have had time to fetch it.
    pub active_from: i64,
}

/// A citizen's smart-ID: the device that holds their keys and the certificates the CA issued
/// for them at activation. Whether the certificates are good is the CA's record, not this one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmartIdRecord {
    /// The citizen's national id.
    pub national_id: String,
    /// Where the citizen's keys are kept: `hardware` (a token) or `software`.
    pub custody: String,
    /// The device key's JWK thumbprint (RFC 7638): how the device names itself.
    pub device_kid: String,
    /// The device key's public JWK (JSON): it signs the device's requests.
    pub device_key: String,
    /// Serial number (hex) of the authentication certificate.
    pub authentication_serial: String,
    /// Serial number (hex) of the signature certificate.
    pub signature_serial: String,
    /// When the device was activated, Unix seconds.
    pub activated_at: i64,
}

/// A smart-ID enrolment waiting for its device: the registration officer proved the
/// citizen in person and handed over a one-time activation code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActivationRecord {
    /// SHA-256 (hex) of the activation code; the code itself is not kept.
    pub code_hash: String,
    /// The enrolled citizen's national id.
    pub national_id: String,
    /// Where the device will keep the keys: `hardware` or `software`.
    pub custody: String,
    /// Who enrolled the citizen (the officer's name, for the audit trail).
    pub officer: String,
    /// When the code stops working, Unix seconds.
    pub expires_at: i64,
}

/// An e-signature a citizen made with the smart-ID signing key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureRecord {
    /// The signing session's id (a hash of it; the session id itself is a bearer secret).
    pub id: String,
    /// The signer's national id.
    pub national_id: String,
    /// The service that asked (a client id; the provider's own signing page is
    /// `hawiya-sign`).
    pub client_id: String,
    /// The document's name as given.
    pub document_name: String,
    /// SHA-256 (hex) of the document as given, or the digest an agency sent instead of it:
    /// hex for SHA-256, `sha-384:` or `sha-512:` and hex for the others.
    pub document_sha256: String,
    /// The signature's format and level (`PAdES-BASELINE-LT`, `CAdES-BASELINE-LT`).
    pub format: String,
    /// Serial number (hex) of the signing certificate.
    pub certificate_serial: String,
    /// When the signature was made, Unix seconds.
    pub signed_at: i64,
}

/// What presenting a refresh token led to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// The token was the live one: the family now stands at the next generation.
    Rotated(RefreshFamily),
    /// The token was of an earlier generation: someone holds a copy. The family is revoked.
    Reused {
        /// The family now revoked.
        family: String,
    },
    /// No such family for this client, or it has expired or been revoked.
    Invalid,
}

/// What the OpenID Connect provider keeps.
#[async_trait::async_trait]
pub trait IdpStore: Send + Sync + std::fmt::Debug {
    /// Stores a new citizen; refuses a national id or id already present.
    async fn insert_citizen(&self, citizen: &CitizenRecord) -> Result<(), StoreError>;

    /// The citizen with that national id.
    async fn citizen(&self, national_id: &str) -> Result<Option<CitizenRecord>, StoreError>;

    /// The citizen with that opaque id.
    async fn citizen_by_id(&self, id: &str) -> Result<Option<CitizenRecord>, StoreError>;

    /// Sets (or with `None` removes) a citizen's TOTP secret.
    async fn set_totp(&self, national_id: &str, secret: Option<&str>) -> Result<(), StoreError>;

    /// Registers a client; refuses a client id already present.
    async fn insert_client(&self, client: &ClientRecord) -> Result<(), StoreError>;

    /// The client with that id.
    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError>;

    /// Every registered client, by id.
    async fn clients(&self) -> Result<Vec<ClientRecord>, StoreError>;

    /// Removes a client with its consents and refresh-token families; `false` if there was none.
    async fn remove_client(&self, client_id: &str) -> Result<bool, StoreError>;

    /// Records (or replaces) a consent.
    async fn put_consent(&self, consent: &ConsentRecord) -> Result<(), StoreError>;

    /// The consent a citizen gave a client.
    async fn consent(&self, citizen_id: &str, client_id: &str) -> Result<Option<ConsentRecord>, StoreError>;

    /// Every consent a citizen has given, by client.
    async fn consents_of(&self, citizen_id: &str) -> Result<Vec<ConsentRecord>, StoreError>;

    /// Withdraws a consent, and revokes the refresh tokens the citizen gave that client;
    /// `false` if there was no consent.
    async fn revoke_consent(&self, citizen_id: &str, client_id: &str) -> Result<bool, StoreError>;

    /// Stores a new refresh-token family; refuses a family id already present.
    async fn insert_refresh_family(&self, family: &RefreshFamily) -> Result<(), StoreError>;

    /// The family with that id.
    async fn refresh_family(&self, family: &str) -> Result<Option<RefreshFamily>, StoreError>;

    /// Moves `family`, held by `client_id` and presented at `generation`, to the next
    /// generation with its live token expiring at `expires_at` (never after the family's
    /// end), atomically: of concurrent rotations from one generation, one rotates and the
    /// others are reuses. A generation older than the live one revokes the family.
    async fn rotate_refresh_family(&self, family: &str, generation: i64, client_id: &str, expires_at: i64, now: i64) -> Result<Rotation, StoreError>;

    /// Revokes a family; `false` if it was unknown or revoked already.
    async fn revoke_refresh_family(&self, family: &str) -> Result<bool, StoreError>;

    /// Deletes the families whose live token expired before `now` (nothing of them can be
    /// used any more); returns how many. Done in short steps, so that other writes go on.
    async fn purge_refresh_families(&self, now: i64) -> Result<u64, StoreError>;

    /// Records a pending enrolment; refuses a code hash already present.
    async fn insert_activation(&self, record: &ActivationRecord) -> Result<(), StoreError>;

    /// A pending enrolment whose code has not expired at `now`.
    async fn activation(&self, code_hash: &str, now: i64) -> Result<Option<ActivationRecord>, StoreError>;

    /// Spends an activation code: removes and returns its enrolment if it had not expired at
    /// `now`. Of two concurrent callers, one gets it.
    async fn take_activation(&self, code_hash: &str, now: i64) -> Result<Option<ActivationRecord>, StoreError>;

    /// Records a citizen's activated smart-ID, replacing an earlier one; returns the one it
    /// replaced (whose certificates the caller then revokes).
    async fn put_smart_id(&self, record: &SmartIdRecord) -> Result<Option<SmartIdRecord>, StoreError>;

    /// A citizen's smart-ID.
    async fn smart_id(&self, national_id: &str) -> Result<Option<SmartIdRecord>, StoreError>;

    /// The smart-ID whose device key has thumbprint `device_kid`.
    async fn smart_id_by_device(&self, device_kid: &str) -> Result<Option<SmartIdRecord>, StoreError>;

    /// Records a new signing key; refuses a key id already present.
    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError>;

    /// Every signing key of `purpose`, oldest first.
    async fn signing_keys(&self, purpose: &str) -> Result<Vec<SigningKeyRecord>, StoreError>;

    /// Records an e-signature; refuses an id already recorded.
    async fn record_signature(&self, record: &SignatureRecord) -> Result<(), StoreError>;

    /// The e-signatures of a citizen, newest first.
    async fn signatures_of(&self, national_id: &str) -> Result<Vec<SignatureRecord>, StoreError>;

    /// Records that the pairwise subject `sub` of `sector` is the citizen `citizen_id`;
    /// an entry already present is kept as it is (a pairwise subject never changes owner).
    async fn put_subject(&self, sector: &str, sub: &str, citizen_id: &str) -> Result<(), StoreError>;

    /// The citizen whose pairwise subject in `sector` is `sub`.
    async fn subject_citizen(&self, sector: &str, sub: &str) -> Result<Option<String>, StoreError>;
}
