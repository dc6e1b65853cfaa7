use std::cmp::Ordering;
use std::time::Duration;

use der::asn1::ObjectIdentifier;
use hsm_shim::KeySpec;

/// A level of assurance. Levels are ordered as the policy file lists them (lowest first), so
/// `required <= achieved` is the question the IdP asks.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AssuranceLevel {
    rank: u8,
    name: String,
}

impl AssuranceLevel {
    pub(crate) fn new(rank: u8, name: String) -> Self {
        AssuranceLevel { rank, name }
    }

    /// The level's short name (`low`, `substantial`, `high`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name to carry between requests (in a session, a login transaction, a grant).
    pub fn to_name(&self) -> LevelName {
        LevelName(self.name.clone())
    }
}

/// A level of assurance as sessions, login transactions and grants carry it from one request
/// to the next (they are stored, and the order of levels belongs to the policy files): made
/// from a level of the policies, and turned back into one by [`crate::Policies::level_named`],
/// which refuses a name the policies no longer define.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct LevelName(String);

impl LevelName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for LevelName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialOrd for AssuranceLevel {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for AssuranceLevel {
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank.cmp(&other.rank)
    }
}

impl std::fmt::Display for AssuranceLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

/// A level with what identifies it on the wire and how long its sessions last.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Level {
    /// The level.
    pub level: AssuranceLevel,
    /// Its name as citizens read it.
    pub title: Localized,
    /// Its `acr` values; the first is the one put into id_tokens.
    pub acr: Vec<String>,
    /// An SSO session at this level ends after this long without use.
    pub session_idle: Duration,
    /// An SSO session at this level ends this long after login, used or not.
    pub session_max: Duration,
}

/// Text in both languages a citizen may read.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Localized {
    /// Arabic (the default).
    pub ar: String,
    /// English.
    pub en: String,
}

/// An authentication method.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Method {
    /// Its identifier (`password`, `password-totp`, `smart-id`).
    pub id: String,
    /// The level a successful login with it reaches.
    pub level: AssuranceLevel,
    /// RFC 8176 `amr` values.
    pub amr: Vec<String>,
    /// Its name on the login pages.
    pub name: Localized,
    /// For a certificate login (smart-ID): the certificate policy OID that puts a
    /// certificate's key under this method. The policy states the key's custody (a hardware
    /// token or software), which decides the level the login reaches.
    pub certificate_policy: Option<ObjectIdentifier>,
    /// For a smart-ID method: the policy OID of the signing certificate issued with the same
    /// custody, so a signature's key reaches the same level as the login.
    pub signature_policy: Option<ObjectIdentifier>,
}

/// Where a certificate stands in the hierarchy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProfileKind {
    /// A self-signed root.
    Root,
    /// An issuing CA, with its path length constraint.
    Intermediate {
        /// pathLenConstraint, if any.
        path_length: Option<u8>,
    },
    /// A leaf.
    EndEntity,
}

/// Whose name a certificate carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubjectKind {
    /// A citizen: C, givenName, surname, CN, serialNumber `PNO<CC>-<id>` (EN 319 412-2).
    NaturalPerson,
    /// The operator or an agency: C, O, CN.
    Organization,
}

/// A keyUsage bit (RFC 5280 4.2.1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum KeyUsage {
    /// digitalSignature
    DigitalSignature,
    /// nonRepudiation (contentCommitment)
    #[serde(alias = "contentCommitment")]
    NonRepudiation,
    /// keyEncipherment
    KeyEncipherment,
    /// dataEncipherment
    DataEncipherment,
    /// keyAgreement
    KeyAgreement,
    /// keyCertSign
    KeyCertSign,
    /// cRLSign
    #[serde(rename = "cRLSign")]
    CrlSign,
}

/// An extended key usage (RFC 5280 4.2.1.12).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Deserialize)]
pub enum ExtendedKeyUsage {
    /// id-kp-serverAuth
    #[serde(rename = "serverAuth")]
    ServerAuth,
    /// id-kp-clientAuth
    #[serde(rename = "clientAuth")]
    ClientAuth,
    /// id-kp-emailProtection
    #[serde(rename = "emailProtection")]
    EmailProtection,
    /// id-kp-timeStamping
    #[serde(rename = "timeStamping")]
    TimeStamping,
    /// id-kp-OCSPSigning
    #[serde(rename = "OCSPSigning")]
    OcspSigning,
}

impl ExtendedKeyUsage {
    /// The usage's OID.
    pub fn oid(self) -> ObjectIdentifier {
        let last = match self {
            ExtendedKeyUsage::ServerAuth => "1",
            ExtendedKeyUsage::ClientAuth => "2",
            ExtendedKeyUsage::EmailProtection => "4",
            ExtendedKeyUsage::TimeStamping => "8",
            ExtendedKeyUsage::OcspSigning => "9",
        };
        // The id-kp arc is 1.3.6.1.5.5.7.3; all five are valid OIDs.
        ObjectIdentifier::new(&format!("1.3.6.1.5.5.7.3.{last}")).unwrap_or(ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3"))
    }
}

/// The QcType statement (EN 319 412-5 4.2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QcType {
    /// id-etsi-qct-esign: electronic signatures.
    Esign,
    /// id-etsi-qct-eseal: electronic seals.
    Eseal,
    /// id-etsi-qct-web: website authentication.
    Web,
}

/// The qcStatements of a qualified certificate (EN 319 412-5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QcStatements {
    /// QcCompliance: the certificate is qualified.
    pub compliance: bool,
    /// QcSSCD: the private key is in a qualified signature creation device.
    pub sscd: bool,
    /// QcType.
    pub qc_type: Option<QcType>,
    /// QcCClegislation naming the ceremony's country: qualified under that country's law,
    /// not eIDAS.
    pub legislation: bool,
}

/// A certificate profile: what a certificate of this kind contains.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateProfile {
    /// The profile's name (`citizen-signature`, …); also its file name.
    pub name: String,
    /// Root, intermediate or end entity.
    pub kind: ProfileKind,
    /// The profile of the CA that issues it, when that is fixed.
    pub issuer: Option<String>,
    /// What the subject name looks like.
    pub subject: SubjectKind,
    /// Validity in days.
    pub validity_days: u32,
    /// keyUsage bits (critical).
    pub key_usage: Vec<KeyUsage>,
    /// extKeyUsage values.
    pub extended_key_usage: Vec<ExtendedKeyUsage>,
    /// Whether extKeyUsage is critical.
    pub extended_key_usage_critical: bool,
    /// certificatePolicies OIDs.
    pub certificate_policies: Vec<ObjectIdentifier>,
    /// Subject keys the profile accepts.
    pub allowed_keys: Vec<KeySpec>,
    /// Whether the certificate points at its issuer's CRL.
    pub crl_distribution_point: bool,
    /// Whether it carries AIA (OCSP and caIssuers).
    pub authority_info_access: bool,
    /// Whether it carries id-pkix-ocsp-nocheck (OCSP responders).
    pub ocsp_no_check: bool,
    /// qcStatements, for qualified certificates.
    pub qc_statements: Option<QcStatements>,
}

impl CertificateProfile {
    /// Whether this profile describes a CA.
    pub fn is_ca(&self) -> bool {
        !matches!(self.kind, ProfileKind::EndEntity)
    }
}

/// What an e-service requires and may receive.
#[derive(Clone, Debug, PartialEq)]
pub struct Service {
    /// The OIDC client id.
    pub client_id: crate::ClientId,
    /// The service's name in both languages.
    pub name: Localized,
    /// The lowest level of assurance it accepts.
    pub min_level: AssuranceLevel,
    /// Scopes it may request.
    pub scopes: Vec<String>,
    /// Claims it may receive.
    pub claims: Vec<String>,
    /// Whether it may receive the `national_id` claim.
    pub national_id: bool,
    /// Whether citizens must consent (false when the law is the legal basis).
    pub consent_required: bool,
    /// Whether it gets the public subject identifier instead of a pairwise one.
    pub public_subject: bool,
    /// Whether it must use PKCE even as a confidential client.
    pub require_pkce: bool,
    /// The clients (resource servers, e.g. the service's API) that may introspect the
    /// tokens issued to this service, besides the service itself.
    pub resource_servers: Vec<crate::ClientId>,
    /// The signature validation policy it accepts (`validation/<id>.toml`); `None`: the
    /// default policy.
    pub validation_policy: Option<String>,
    /// The client's registration, when the policy file declares the client itself
    /// (`[registration]`: redirect URIs, authentication method, keys…) instead of leaving
    /// it to `hawiya client add`. The OpenID Connect provider reads and checks it.
    pub registration: Option<toml::Table>,
}

/// The timestamp authority's policy (`tsa.toml`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimestampPolicy {
    /// The TSA policy every token is issued under (TSTInfo.policy).
    pub policy: ObjectIdentifier,
    /// The accuracy stated in every token.
    pub accuracy: Duration,
    /// The digest algorithms accepted in message imprints, by name (`sha256`, `sha384`,
    /// `sha512`).
    pub hash_algorithms: Vec<String>,
}

/// What citizens' e-signatures require (`signing.toml`).
#[derive(Clone, Debug, PartialEq)]
pub struct SigningPolicy {
    /// The level of the SSO session the signing page needs.
    pub min_level: AssuranceLevel,
    /// The largest document accepted, in octets.
    pub max_document_bytes: usize,
    /// How long the citizen has to approve on the device.
    pub timeout: Duration,
    /// The most hashes one CSC authorisation (`credentials/authorize`) may ask the device to
    /// sign: the credential's `multisign`.
    pub max_hashes_per_authorization: usize,
}
