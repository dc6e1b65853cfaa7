//! Signature validation policies (`validation/*.toml`) and the national trust list
//! (`trust-list.toml`, with the certificates it names under `trust/`).
//!
//! A validation policy says what a relying party accepts — formats, the lowest baseline
//! level, the lowest qualification, whether a timestamp must prove when the signature
//! existed, how fresh revocation evidence must be, which algorithms and key sizes are
//! reliable until when, and for signatures made with a Hawiya smart-ID the lowest level of
//! assurance of the signing key — in the terms of ETSI EN 319 102-1 (the "signature
//! validation constraints" of its validation policy). Each e-service names the policy it
//! accepts; one policy is the default. A validation report names the policy's id and
//! revision. Adding a policy is adding a file.
//!
//! The trust list says which certification authorities are trusted, which issue qualified
//! certificates and since when, as a national trusted list does (ETSI TS 119 612, kept here
//! as a policy file): the deployment's own hierarchy (the ceremony's CAs), and any other
//! authority by its certificate.

use serde::Deserialize;
use toml::Spanned;

use crate::model::{AssuranceLevel, Localized};
use crate::raw::Source;
use crate::{PolicyError, PolicyErrors};

/// A signature format a validation policy may accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureFormat {
    /// PAdES: signatures and document timestamps in a PDF.
    Pades,
    /// CAdES: detached or enveloping CMS signatures.
    Cades,
    /// An RFC 3161 timestamp token over a document.
    Timestamp,
}

/// The baseline levels of EN 319 142-1 / EN 319 122-1, lowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
pub enum BaselineLevel {
    /// B-B: the signature and its signed attributes.
    #[serde(rename = "B-B")]
    B,
    /// B-T: and a signature timestamp.
    #[serde(rename = "B-T")]
    T,
    /// B-LT: and the validation data (certificates, revocation evidence).
    #[serde(rename = "B-LT")]
    Lt,
    /// B-LTA: and an archive (document) timestamp over it all.
    #[serde(rename = "B-LTA")]
    Lta,
}

impl BaselineLevel {
    /// ETSI's suffix (`B`, `T`, `LT`, `LTA`), as in `PAdES-BASELINE-LT`.
    pub fn suffix(self) -> &'static str {
        match self {
            BaselineLevel::B => "B",
            BaselineLevel::T => "T",
            BaselineLevel::Lt => "LT",
            BaselineLevel::Lta => "LTA",
        }
    }
}

/// The qualification of a signature (ETSI TS 119 172-4 terms), lowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Qualification {
    /// AdESig: an advanced electronic signature.
    Advanced,
    /// AdESig-QC: advanced, supported by a qualified certificate.
    AdvancedQc,
    /// QESig: qualified (a qualified certificate and a qualified signature creation device).
    Qualified,
}

impl Qualification {
    /// The name in reports (`AdESig`, `AdESig-QC`, `QESig`).
    pub fn report_name(self) -> &'static str {
        match self {
            Qualification::Advanced => "AdESig",
            Qualification::AdvancedQc => "AdESig-QC",
            Qualification::Qualified => "QESig",
        }
    }
}

/// A digest or signature algorithm a policy constrains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Algorithm {
    /// SHA-1.
    #[serde(rename = "sha-1")]
    Sha1,
    /// SHA-224.
    #[serde(rename = "sha-224")]
    Sha224,
    /// SHA-256.
    #[serde(rename = "sha-256")]
    Sha256,
    /// SHA-384.
    #[serde(rename = "sha-384")]
    Sha384,
    /// SHA-512.
    #[serde(rename = "sha-512")]
    Sha512,
    /// RSA with PKCS #1 v1.5 padding (key size in bits).
    Rsa,
    /// RSA with PSS padding (key size in bits).
    RsaPss,
    /// ECDSA on P-256.
    EcdsaP256,
    /// ECDSA on P-384.
    EcdsaP384,
    /// ECDSA on P-521.
    EcdsaP521,
    /// Ed25519.
    Ed25519,
}

impl Algorithm {
    /// Whether the key size matters (`min_bits`).
    pub fn sized(self) -> bool {
        matches!(self, Algorithm::Rsa | Algorithm::RsaPss)
    }
}

/// One algorithm's constraint: accepted with keys of at least `min_bits`, for signatures
/// proved to exist before `until` (Unix seconds, the start of that day in UTC).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlgorithmConstraint {
    /// The algorithm.
    pub algorithm: Algorithm,
    /// The smallest key accepted (RSA), in bits.
    pub min_bits: Option<u32>,
    /// No longer reliable from this time on (Unix seconds); `None`: still reliable.
    pub until: Option<i64>,
}

/// Why an algorithm is not accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlgorithmRefusal {
    /// The policy does not list it at all.
    NotAccepted,
    /// The key is smaller than the policy's minimum (bits given, bits required).
    KeyTooSmall {
        /// The key's size.
        bits: u32,
        /// The policy's minimum.
        min_bits: u32,
    },
    /// It stopped being reliable at `until` (Unix seconds), before the time it must be
    /// trusted at.
    Expired {
        /// When it stopped being reliable.
        until: i64,
    },
}

/// A signature validation policy (`validation/<id>.toml`).
#[derive(Clone, Debug, PartialEq)]
pub struct ValidationPolicy {
    /// Its id (the file's name).
    pub id: String,
    /// Its revision: a report names the id and the revision it applied.
    pub revision: u32,
    /// Its name in both languages.
    pub name: Localized,
    /// Whether `hawiya verify` and the verification page apply it when no policy is named.
    pub default: bool,
    /// The formats accepted; others are FORMAT_FAILURE.
    pub formats: Vec<SignatureFormat>,
    /// The lowest baseline level accepted.
    pub min_baseline: BaselineLevel,
    /// The lowest qualification accepted.
    pub min_qualification: Qualification,
    /// Whether a signature timestamp (or an archive timestamp) must prove when the signature
    /// existed.
    pub timestamp_required: bool,
    /// Revocation evidence older than this, measured from the time it must speak for, is not
    /// fresh (EN 319 102-1 revocation freshness checker), in seconds.
    pub revocation_freshness: u64,
    /// Whether the validator may fetch OCSP responses and CRLs when the signature's own
    /// evidence is not enough.
    pub online_revocation: bool,
    /// For signatures made with a Hawiya smart-ID: the lowest level of assurance of the
    /// signing key (the level its certificate policy's method reaches).
    pub signer_min_level: Option<AssuranceLevel>,
    /// The algorithms accepted, with their key sizes and end dates.
    pub algorithms: Vec<AlgorithmConstraint>,
}

impl ValidationPolicy {
    /// Whether `algorithm` with a key of `bits` (for sized algorithms) may be relied on for a
    /// signature that existed at `at` (Unix seconds).
    pub fn accepts(&self, algorithm: Algorithm, bits: Option<u32>, at: i64) -> Result<(), AlgorithmRefusal> {
        let listed: Vec<_> = self.algorithms.iter().filter(|c| c.algorithm == algorithm).collect();
        let big_enough: Vec<_> = listed.iter().filter(|c| c.min_bits.is_none_or(|min| bits.is_some_and(|b| b >= min))).collect();
        if big_enough.iter().any(|c| c.until.is_none_or(|until| at < until)) {
            return Ok(());
        }
        // Expired for a key of this size; or too small for every constraint.
        if let Some(until) = big_enough.iter().filter_map(|c| c.until).max() {
            return Err(AlgorithmRefusal::Expired { until });
        }
        match listed.iter().filter_map(|c| c.min_bits).min() {
            Some(min_bits) => Err(AlgorithmRefusal::KeyTooSmall { bits: bits.unwrap_or(0), min_bits }),
            None => Err(AlgorithmRefusal::NotAccepted),
        }
    }
}

/// What an authority in the trust list is trusted for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthorityKind {
    /// A root: a trust anchor for certificate paths.
    Root,
    /// A CA that issues certificates (a trust anchor too).
    Ca,
    /// A timestamp authority.
    Tsa,
}

/// An authority of the trust list.
#[derive(Clone, Debug, PartialEq)]
pub struct TrustedAuthority {
    /// Its name in both languages.
    pub name: Localized,
    /// What it is trusted as.
    pub kind: AuthorityKind,
    /// Its certificate (DER).
    pub certificate: Vec<u8>,
    /// Since when the certificates it issues with qcStatements are qualified (Unix seconds);
    /// `None`: it issues no qualified certificates.
    pub qualified_since: Option<i64>,
    /// When its trust was withdrawn (Unix seconds): nothing it issued after is trusted.
    pub withdrawn: Option<i64>,
}

/// The national trust list (`trust-list.toml`).
#[derive(Clone, Debug, PartialEq)]
pub struct TrustList {
    /// The territory (ISO 3166 alpha-2) whose list this is.
    pub territory: String,
    /// Whether the deployment's own hierarchy (the ceremony's root and CAs) is trusted, its
    /// Citizen Signing CA issuing qualified certificates from the ceremony on.
    pub own_hierarchy: bool,
    /// Other authorities, by certificate.
    pub authorities: Vec<TrustedAuthority>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ValidationFile {
    version: Spanned<u32>,
    id: Spanned<String>,
    revision: Spanned<u32>,
    name: Localized,
    #[serde(default)]
    default: bool,
    formats: Spanned<Vec<SignatureFormat>>,
    min_baseline: BaselineLevel,
    min_qualification: Qualification,
    timestamp_required: Spanned<bool>,
    revocation_freshness_seconds: Spanned<u64>,
    #[serde(default)]
    online_revocation: bool,
    signer_min_level: Option<Spanned<String>>,
    algorithm: Spanned<Vec<RawConstraint>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConstraint {
    name: Spanned<Algorithm>,
    min_bits: Option<Spanned<u32>>,
    until: Option<Spanned<toml::value::Datetime>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TrustListFile {
    version: Spanned<u32>,
    territory: Spanned<String>,
    own_hierarchy: bool,
    #[serde(default)]
    authority: Vec<RawAuthority>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuthority {
    name: Localized,
    kind: AuthorityKind,
    certificate: Spanned<String>,
    qualified_since: Option<Spanned<toml::value::Datetime>>,
    withdrawn: Option<Spanned<toml::value::Datetime>>,
}

/// Unix seconds at the start (UTC) of a TOML date, or of a date-time in UTC.
fn unix_time(src: &Source<'_>, value: &Spanned<toml::value::Datetime>, errors: &mut PolicyErrors) -> Option<i64> {
    let dt = value.get_ref();
    let Some(date) = dt.date else {
        errors.push(src.err(value, "a date is needed (YYYY-MM-DD)"));
        return None;
    };
    if dt.offset.is_some_and(|o| o != toml::value::Offset::Z) {
        errors.push(src.err(value, "give the time in UTC (Z) or a date alone"));
        return None;
    }
    let (y, m, d) = (i64::from(date.year), i64::from(date.month), i64::from(date.day));
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = dt.time.map_or(0, |t| i64::from(t.hour) * 3600 + i64::from(t.minute) * 60 + i64::from(t.second));
    Some(days * 86_400 + seconds)
}

/// Finds the level a file names, reporting an unknown one.
pub(crate) type FindLevel<'a> = dyn Fn(&Source<'_>, &Spanned<String>, &mut PolicyErrors) -> Option<AssuranceLevel> + 'a;

pub(crate) fn validation_policy(src: &Source<'_>, raw: ValidationFile, find_level: &FindLevel<'_>, errors: &mut PolicyErrors) -> Option<ValidationPolicy> {
    let before = errors.0.len();
    src.check_version(&raw.version, errors);
    let stem = std::path::Path::new(src.file).file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    if raw.id.get_ref() != stem {
        errors.push(src.err(&raw.id, format!("the policy id {:?} must match its file name {stem:?}", raw.id.get_ref())));
    }
    if *raw.revision.get_ref() == 0 {
        errors.push(src.err(&raw.revision, "revision must be at least 1"));
    }
    if raw.formats.get_ref().is_empty() {
        errors.push(src.err(&raw.formats, "formats must not be empty (pades, cades, timestamp)"));
    }
    if *raw.revocation_freshness_seconds.get_ref() == 0 {
        errors.push(src.err(&raw.revocation_freshness_seconds, "revocation_freshness_seconds must be positive"));
    }
    if raw.min_baseline >= BaselineLevel::T && !raw.timestamp_required.get_ref() {
        errors.push(src.err(&raw.timestamp_required, "a minimum baseline of B-T or higher means a timestamp is required: set timestamp_required = true"));
    }
    let signer_min_level = raw.signer_min_level.as_ref().and_then(|l| find_level(src, l, errors));
    let mut algorithms = Vec::new();
    for c in raw.algorithm.get_ref() {
        let algorithm = *c.name.get_ref();
        match (&c.min_bits, algorithm.sized()) {
            (None, true) => errors.push(src.err(&c.name, "RSA needs min_bits")),
            (Some(bits), false) => errors.push(src.err(bits, "min_bits is for RSA keys only (curves have their size in the name)")),
            _ => {}
        }
        let until = c.until.as_ref().and_then(|u| unix_time(src, u, errors));
        algorithms.push(AlgorithmConstraint { algorithm, min_bits: c.min_bits.as_ref().map(|b| *b.get_ref()), until });
    }
    let digests = [Algorithm::Sha224, Algorithm::Sha256, Algorithm::Sha384, Algorithm::Sha512, Algorithm::Sha1];
    if !algorithms.iter().any(|c| digests.contains(&c.algorithm)) || algorithms.iter().all(|c| digests.contains(&c.algorithm)) {
        errors.push(src.err(&raw.algorithm, "[[algorithm]] must list at least one digest and one signature algorithm"));
    }
    if errors.0.len() != before {
        return None;
    }
    Some(ValidationPolicy {
        id: raw.id.into_inner(),
        revision: raw.revision.into_inner(),
        name: raw.name,
        default: raw.default,
        formats: raw.formats.into_inner(),
        min_baseline: raw.min_baseline,
        min_qualification: raw.min_qualification,
        timestamp_required: raw.timestamp_required.into_inner(),
        revocation_freshness: raw.revocation_freshness_seconds.into_inner(),
        online_revocation: raw.online_revocation,
        signer_min_level,
        algorithms,
    })
}

/// Reads the trust list; `certificate(path)` gives the PEM text of a file it names
/// (relative to the policy directory), if there is one.
pub(crate) fn trust_list(src: &Source<'_>, raw: TrustListFile, certificate: &dyn Fn(&str) -> Option<String>, errors: &mut PolicyErrors) -> Option<TrustList> {
    let before = errors.0.len();
    src.check_version(&raw.version, errors);
    let territory = raw.territory.get_ref();
    if territory.len() != 2 || !territory.bytes().all(|b| b.is_ascii_uppercase()) {
        errors.push(src.err(&raw.territory, format!("territory {territory:?} is not an ISO 3166 alpha-2 code (e.g. JO)")));
    }
    let mut authorities = Vec::new();
    for a in raw.authority {
        let name = a.certificate.get_ref();
        let der = match certificate(name) {
            None => {
                errors.push(src.err(&a.certificate, format!("no certificate file {name:?} in the policy directory (e.g. trust/other-root.pem)")));
                None
            }
            Some(pem) => match der::pem::decode_vec(pem.as_bytes()) {
                Ok(("CERTIFICATE", der)) => Some(der),
                Ok((label, _)) => {
                    errors.push(src.err(&a.certificate, format!("{name:?} holds a {label}, not a CERTIFICATE")));
                    None
                }
                Err(e) => {
                    errors.push(src.err(&a.certificate, format!("{name:?} is not a PEM certificate: {e}")));
                    None
                }
            },
        };
        let qualified_since = a.qualified_since.as_ref().and_then(|d| unix_time(src, d, errors));
        let withdrawn = a.withdrawn.as_ref().and_then(|d| unix_time(src, d, errors));
        if let (Some(q), Some(w)) = (qualified_since, withdrawn)
            && w < q
            && let Some(d) = &a.withdrawn
        {
            errors.push(src.err(d, "withdrawn before it was qualified"));
        }
        if let Some(certificate) = der {
            if authorities.iter().any(|t: &TrustedAuthority| t.certificate == certificate) {
                errors.push(src.err(&a.certificate, format!("{name:?} is listed twice")));
            }
            authorities.push(TrustedAuthority { name: a.name, kind: a.kind, certificate, qualified_since, withdrawn });
        }
    }
    if errors.0.len() != before {
        return None;
    }
    Some(TrustList { territory: raw.territory.into_inner(), own_hierarchy: raw.own_hierarchy, authorities })
}

/// Cross-checks: exactly one policy is the default.
pub(crate) fn check_policies(policies: &[ValidationPolicy], errors: &mut PolicyErrors) {
    match policies.iter().filter(|p| p.default).count() {
        1 => {}
        0 => errors.push(PolicyError::file("validation/", "no validation policy is the default: mark one with `default = true`".into())),
        _ => errors.push(PolicyError::file("validation/", "more than one validation policy says `default = true`".into())),
    }
}
