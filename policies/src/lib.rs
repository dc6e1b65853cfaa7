//! The policy files every e-service relies on, and the code that reads them.
//!
//! Levels of assurance, authentication methods, certificate profiles and e-service
//! requirements are data, not code: they live in TOML files next to this crate (shipped
//! defaults, embedded in the binary) or in an operator's directory with the same layout.
//! This crate parses them into typed values and refuses anything unknown, inconsistent or
//! missing, naming the file, the line and what is wrong.
//!
//! It never decides anything itself: the IdP and the CA apply what the policies say. It
//! also holds [`NationalId`], the one rule for national identity numbers, because every
//! crate that takes one depends on this crate.

pub mod client_id;
mod error;
mod model;
pub mod national_id;
mod raw;
mod validation;

use der::asn1::ObjectIdentifier;
use std::collections::BTreeMap;
use std::path::Path;

pub use client_id::{ClientId, InvalidClientId};
pub use error::{PolicyError, PolicyErrors};
pub use model::{
    AssuranceLevel, CertificateProfile, ExtendedKeyUsage, KeyUsage, Level, LevelName, Localized, Method, ProfileKind, QcStatements, QcType, Service,
    SigningPolicy, SubjectKind, TimestampPolicy,
};
pub use national_id::{InvalidNationalId, NationalId};
pub use validation::{
    Algorithm, AlgorithmConstraint, AlgorithmRefusal, AuthorityKind, BaselineLevel, Qualification, SignatureFormat, TrustList, TrustedAuthority,
    ValidationPolicy,
};

/// The shipped policy files, embedded so the binary runs anywhere.
const SHIPPED: &[(&str, &str)] = &[
    ("assurance.toml", include_str!("../assurance.toml")),
    ("methods.toml", include_str!("../methods.toml")),
    ("tsa.toml", include_str!("../tsa.toml")),
    ("signing.toml", include_str!("../signing.toml")),
    ("trust-list.toml", include_str!("../trust-list.toml")),
    ("validation/advanced.toml", include_str!("../validation/advanced.toml")),
    ("validation/qualified.toml", include_str!("../validation/qualified.toml")),
    ("profiles/root-ca.toml", include_str!("../profiles/root-ca.toml")),
    ("profiles/citizen-authentication-ca.toml", include_str!("../profiles/citizen-authentication-ca.toml")),
    ("profiles/citizen-signing-ca.toml", include_str!("../profiles/citizen-signing-ca.toml")),
    ("profiles/services-ca.toml", include_str!("../profiles/services-ca.toml")),
    ("profiles/citizen-authentication.toml", include_str!("../profiles/citizen-authentication.toml")),
    ("profiles/citizen-signature.toml", include_str!("../profiles/citizen-signature.toml")),
    ("profiles/citizen-authentication-soft.toml", include_str!("../profiles/citizen-authentication-soft.toml")),
    ("profiles/citizen-signature-soft.toml", include_str!("../profiles/citizen-signature-soft.toml")),
    ("profiles/ocsp-responder.toml", include_str!("../profiles/ocsp-responder.toml")),
    ("profiles/timestamping.toml", include_str!("../profiles/timestamping.toml")),
    ("profiles/validation-service.toml", include_str!("../profiles/validation-service.toml")),
    ("profiles/audit-log.toml", include_str!("../profiles/audit-log.toml")),
    ("services/civil-status.toml", include_str!("../services/civil-status.toml")),
    ("services/land-registry.toml", include_str!("../services/land-registry.toml")),
    ("services/notary.toml", include_str!("../services/notary.toml")),
];

/// Every policy, parsed and cross-checked.
#[derive(Clone, Debug)]
pub struct Policies {
    levels: Vec<Level>,
    methods: Vec<Method>,
    profiles: BTreeMap<String, CertificateProfile>,
    services: Vec<Service>,
    timestamping: TimestampPolicy,
    signing: SigningPolicy,
    validation: Vec<ValidationPolicy>,
    trust_list: TrustList,
}

impl Policies {
    /// The policies shipped with Hawiya.
    pub fn shipped() -> Result<Self, PolicyErrors> {
        Self::from_files(SHIPPED.iter().map(|(name, text)| (name.to_string(), text.to_string())).collect())
    }

    /// Reads a policy directory: `assurance.toml`, `methods.toml`, `tsa.toml`,
    /// `signing.toml`, `trust-list.toml`, `profiles/*.toml`, `services/*.toml`,
    /// `validation/*.toml`, and the certificates the trust list names (`trust/*.pem`, if any).
    pub fn load(dir: &Path) -> Result<Self, PolicyErrors> {
        let mut files = Vec::new();
        let mut errors = PolicyErrors::default();
        for name in ["assurance.toml", "methods.toml", "tsa.toml", "signing.toml", "trust-list.toml"] {
            match std::fs::read_to_string(dir.join(name)) {
                Ok(text) => files.push((dir.join(name).display().to_string(), text)),
                Err(e) => errors.push(PolicyError::file(dir.join(name), format!("cannot read: {e}"))),
            }
        }
        for (sub, extension) in [("profiles", "toml"), ("services", "toml"), ("validation", "toml"), ("trust", "pem")] {
            let sub_dir = dir.join(sub);
            let entries = match std::fs::read_dir(&sub_dir) {
                Ok(entries) => entries,
                Err(e) if sub == "trust" && e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    errors.push(PolicyError::file(&sub_dir, format!("cannot read directory: {e}")));
                    continue;
                }
            };
            let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == extension)).collect();
            paths.sort();
            for path in paths {
                match std::fs::read_to_string(&path) {
                    Ok(text) => files.push((path.display().to_string(), text)),
                    Err(e) => errors.push(PolicyError::file(&path, format!("cannot read: {e}"))),
                }
            }
        }
        errors.into_result()?;
        Self::from_files(files)
    }

    /// Parses named file contents laid out as in a policy directory.
    fn from_files(files: Vec<(String, String)>) -> Result<Self, PolicyErrors> {
        raw::build(files)
    }

    /// The levels of assurance, lowest first.
    pub fn levels(&self) -> &[Level] {
        &self.levels
    }

    /// The level called `name`.
    pub fn level(&self, name: &str) -> Option<&Level> {
        self.levels.iter().find(|l| l.level.name() == name)
    }

    /// The level a carried [`LevelName`] names, if the policies still define it.
    pub fn level_named(&self, name: &LevelName) -> Option<&Level> {
        self.level(name.as_str())
    }

    /// The level an `acr` value (short name or eIDAS URI) stands for.
    pub fn level_for_acr(&self, acr: &str) -> Option<&Level> {
        self.levels.iter().find(|l| l.acr.iter().any(|a| a == acr))
    }

    /// The authentication methods.
    pub fn methods(&self) -> &[Method] {
        &self.methods
    }

    /// The certificate login method whose policy is among a certificate's `policies`.
    pub fn certificate_method(&self, policies: &[ObjectIdentifier]) -> Option<&Method> {
        self.methods.iter().find(|m| m.certificate_policy.is_some_and(|p| policies.contains(&p)))
    }

    /// The smart-ID method whose signing-certificate policy is among a certificate's
    /// `policies`: the level a signature made with that key reaches.
    pub fn signature_method(&self, policies: &[ObjectIdentifier]) -> Option<&Method> {
        self.methods.iter().find(|m| m.signature_policy.is_some_and(|p| policies.contains(&p)))
    }

    /// The certificate profile called `name`.
    pub fn profile(&self, name: &str) -> Option<&CertificateProfile> {
        self.profiles.get(name)
    }

    /// Every certificate profile, by name.
    pub fn profiles(&self) -> impl Iterator<Item = &CertificateProfile> {
        self.profiles.values()
    }

    /// The e-services.
    pub fn services(&self) -> &[Service] {
        &self.services
    }

    /// The timestamp authority's policy.
    pub fn timestamping(&self) -> &TimestampPolicy {
        &self.timestamping
    }

    /// What citizens' e-signatures require.
    pub fn signing(&self) -> &SigningPolicy {
        &self.signing
    }

    /// The signature validation policies.
    pub fn validation_policies(&self) -> &[ValidationPolicy] {
        &self.validation
    }

    /// The validation policy with that id.
    pub fn validation_policy(&self, id: &str) -> Option<&ValidationPolicy> {
        self.validation.iter().find(|p| p.id == id)
    }

    /// The validation policy applied when none is named.
    pub fn default_validation_policy(&self) -> &ValidationPolicy {
        // Loading checks that exactly one policy is the default.
        self.validation.iter().find(|p| p.default).unwrap_or(&self.validation[0])
    }

    /// The national trust list.
    pub fn trust_list(&self) -> &TrustList {
        &self.trust_list
    }

    /// The e-service with that client id.
    pub fn service(&self, client_id: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.client_id.as_str() == client_id)
    }
}

#[cfg(test)]
mod tests;
