//! The files as written, with source positions, and their conversion into the model.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use der::asn1::ObjectIdentifier;
use hsm_shim::KeySpec;
use serde::Deserialize;
use toml::Spanned;

use crate::model::*;
use crate::validation;
use crate::{Policies, PolicyError, PolicyErrors};

const VERSION: u32 = 1;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AssuranceFile {
    version: Spanned<u32>,
    level: Vec<RawLevel>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLevel {
    name: Spanned<String>,
    title: Localized,
    acr: Vec<Spanned<String>>,
    session_idle_minutes: u32,
    session_max_hours: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MethodsFile {
    version: Spanned<u32>,
    method: Vec<RawMethod>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMethod {
    id: Spanned<String>,
    level: Spanned<String>,
    amr: Spanned<Vec<String>>,
    name: Localized,
    #[serde(default)]
    certificate_policy: Option<Spanned<String>>,
    #[serde(default)]
    signature_policy: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TsaFile {
    version: Spanned<u32>,
    policy: Spanned<String>,
    accuracy_seconds: Spanned<u32>,
    hash_algorithms: Spanned<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SigningFile {
    version: Spanned<u32>,
    min_level: Spanned<String>,
    max_document_bytes: Spanned<u64>,
    timeout_seconds: Spanned<u32>,
    max_hashes_per_authorization: Spanned<u32>,
}

/// The digest algorithms a timestamp request may use; SHA-1 is not among them.
const TSA_HASH_ALGORITHMS: [&str; 3] = ["sha256", "sha384", "sha512"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    version: Spanned<u32>,
    name: Spanned<String>,
    kind: Spanned<String>,
    issuer: Option<Spanned<String>>,
    subject: Spanned<String>,
    validity_days: Spanned<u32>,
    key_usage: Spanned<Vec<KeyUsage>>,
    #[serde(default)]
    extended_key_usage: Vec<ExtendedKeyUsage>,
    extended_key_usage_critical: Option<Spanned<bool>>,
    path_length: Option<Spanned<u8>>,
    #[serde(default)]
    certificate_policies: Vec<Spanned<String>>,
    allowed_keys: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    crl_distribution_point: bool,
    #[serde(default)]
    authority_info_access: bool,
    #[serde(default)]
    ocsp_no_check: bool,
    qc_statements: Option<Spanned<RawQc>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQc {
    #[serde(default)]
    compliance: bool,
    #[serde(default)]
    sscd: bool,
    #[serde(rename = "type")]
    qc_type: Option<QcType>,
    #[serde(default)]
    legislation: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceFile {
    version: Spanned<u32>,
    client_id: Spanned<String>,
    name: Localized,
    min_level: Spanned<String>,
    scopes: Spanned<Vec<String>>,
    claims: Spanned<Vec<String>>,
    #[serde(default)]
    national_id: bool,
    #[serde(default = "yes")]
    consent_required: bool,
    #[serde(default)]
    public_subject: bool,
    #[serde(default)]
    require_pkce: bool,
    #[serde(default)]
    resource_servers: Vec<crate::ClientId>,
    validation_policy: Option<Spanned<String>>,
    registration: Option<toml::Table>,
}

fn yes() -> bool {
    true
}

/// One file being read: its name and text, to turn spans into line numbers.
pub(crate) struct Source<'a> {
    pub(crate) file: &'a str,
    pub(crate) text: &'a str,
}

impl Source<'_> {
    pub(crate) fn err<T>(&self, spanned: &Spanned<T>, message: impl Into<String>) -> PolicyError {
        PolicyError::at(self.file, self.text, spanned.span().start, message.into())
    }

    pub(crate) fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, PolicyError> {
        toml::from_str(self.text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            PolicyError::at(self.file, self.text, offset, e.message().trim().to_owned())
        })
    }

    pub(crate) fn check_version(&self, version: &Spanned<u32>, errors: &mut PolicyErrors) {
        if *version.get_ref() != VERSION {
            errors.push(self.err(version, format!("unsupported version {} (this Hawiya reads version {VERSION})", version.get_ref())));
        }
    }
}

pub(crate) fn build(files: Vec<(String, String)>) -> Result<Policies, PolicyErrors> {
    let mut errors = PolicyErrors::default();
    let kind_of = |name: &str| {
        let name = name.replace('\\', "/");
        if name.ends_with("assurance.toml") && !name.contains("/services/") && !name.contains("/profiles/") {
            "assurance"
        } else if name.ends_with("methods.toml") && !name.contains("/services/") && !name.contains("/profiles/") {
            "methods"
        } else if name.ends_with("tsa.toml") && !name.contains("/services/") && !name.contains("/profiles/") {
            "tsa"
        } else if name.ends_with("signing.toml") && !name.contains("/services/") && !name.contains("/profiles/") {
            "signing"
        } else if name.ends_with("trust-list.toml") && !name.contains("/services/") && !name.contains("/profiles/") {
            "trust-list"
        } else if name.contains("profiles/") {
            "profile"
        } else if name.contains("services/") {
            "service"
        } else if name.contains("validation/") {
            "validation"
        } else if name.contains("trust/") {
            "trust-certificate"
        } else {
            "unknown"
        }
    };

    // Levels first: everything else refers to them.
    let mut levels = Vec::new();
    let assurance: Vec<_> = files.iter().filter(|(n, _)| kind_of(n) == "assurance").collect();
    match assurance.as_slice() {
        [(file, text)] => {
            let src = Source { file, text };
            match src.parse::<AssuranceFile>() {
                Err(e) => errors.push(e),
                Ok(parsed) => {
                    src.check_version(&parsed.version, &mut errors);
                    let mut acrs = HashSet::new();
                    for (rank, raw) in parsed.level.into_iter().enumerate() {
                        if levels.iter().any(|l: &Level| l.level.name() == raw.name.get_ref()) {
                            errors.push(src.err(&raw.name, format!("level {:?} is defined twice", raw.name.get_ref())));
                        }
                        for acr in &raw.acr {
                            if !acrs.insert(acr.get_ref().clone()) {
                                errors.push(src.err(acr, format!("acr value {:?} names two levels", acr.get_ref())));
                            }
                        }
                        if raw.acr.is_empty() {
                            errors.push(src.err(&raw.name, "a level needs at least one acr value"));
                        }
                        if raw.session_idle_minutes == 0 || u64::from(raw.session_idle_minutes) > u64::from(raw.session_max_hours) * 60 {
                            errors.push(src.err(&raw.name, "session_idle_minutes must be positive and no longer than session_max_hours"));
                        }
                        levels.push(Level {
                            level: AssuranceLevel::new(rank as u8, raw.name.into_inner()),
                            title: raw.title,
                            acr: raw.acr.into_iter().map(Spanned::into_inner).collect(),
                            session_idle: Duration::from_secs(u64::from(raw.session_idle_minutes) * 60),
                            session_max: Duration::from_secs(u64::from(raw.session_max_hours) * 3600),
                        });
                    }
                    if levels.is_empty() {
                        errors.push(PolicyError::file(file, "no [[level]] defined".into()));
                    }
                }
            }
        }
        [] => errors.push(PolicyError::file("assurance.toml", "missing: the levels of assurance must be defined".into())),
        _ => errors.push(PolicyError::file("assurance.toml", "given more than once".into())),
    }
    let find_level = |src: &Source<'_>, name: &Spanned<String>, errors: &mut PolicyErrors| {
        let found = levels.iter().find(|l| l.level.name() == name.get_ref()).map(|l| l.level.clone());
        if found.is_none() && !levels.is_empty() {
            let known: Vec<_> = levels.iter().map(|l| l.level.name().to_owned()).collect();
            errors.push(src.err(name, format!("unknown level {:?} (known: {})", name.get_ref(), known.join(", "))));
        }
        found
    };

    let mut timestamping = None;
    let tsa: Vec<_> = files.iter().filter(|(n, _)| kind_of(n) == "tsa").collect();
    match tsa.as_slice() {
        [(file, text)] => {
            let src = Source { file, text };
            match src.parse::<TsaFile>() {
                Err(e) => errors.push(e),
                Ok(raw) => timestamping = timestamp_policy(&src, raw, &mut errors),
            }
        }
        [] => errors.push(PolicyError::file("tsa.toml", "missing: the timestamp authority's policy must be defined".into())),
        _ => errors.push(PolicyError::file("tsa.toml", "given more than once".into())),
    }

    let mut signing = None;
    let signing_files: Vec<_> = files.iter().filter(|(n, _)| kind_of(n) == "signing").collect();
    match signing_files.as_slice() {
        [(file, text)] => {
            let src = Source { file, text };
            match src.parse::<SigningFile>() {
                Err(e) => errors.push(e),
                Ok(raw) => {
                    let before = errors.0.len();
                    src.check_version(&raw.version, &mut errors);
                    if !(1..=100 * 1024 * 1024).contains(raw.max_document_bytes.get_ref()) {
                        errors.push(src.err(&raw.max_document_bytes, "max_document_bytes must be between 1 and 104857600 (100 MiB)"));
                    }
                    if !(10..=600).contains(raw.timeout_seconds.get_ref()) {
                        errors.push(src.err(&raw.timeout_seconds, "timeout_seconds must be between 10 and 600"));
                    }
                    if !(1..=100).contains(raw.max_hashes_per_authorization.get_ref()) {
                        errors.push(src.err(&raw.max_hashes_per_authorization, "max_hashes_per_authorization must be between 1 and 100"));
                    }
                    if let Some(min_level) = find_level(&src, &raw.min_level, &mut errors)
                        && errors.0.len() == before
                    {
                        signing = Some(SigningPolicy {
                            min_level,
                            max_document_bytes: *raw.max_document_bytes.get_ref() as usize,
                            timeout: Duration::from_secs(u64::from(*raw.timeout_seconds.get_ref())),
                            max_hashes_per_authorization: *raw.max_hashes_per_authorization.get_ref() as usize,
                        });
                    }
                }
            }
        }
        [] => errors.push(PolicyError::file("signing.toml", "missing: the e-signature policy must be defined".into())),
        _ => errors.push(PolicyError::file("signing.toml", "given more than once".into())),
    }

    let mut trust_list = None;
    let trust_files: Vec<_> = files.iter().filter(|(n, _)| kind_of(n) == "trust-list").collect();
    match trust_files.as_slice() {
        [(file, text)] => {
            let src = Source { file, text };
            match src.parse::<validation::TrustListFile>() {
                Err(e) => errors.push(e),
                Ok(raw) => {
                    // Certificates are named relative to the policy directory (the trust list's own).
                    let base = file.replace('\\', "/");
                    let base = base.strip_suffix("trust-list.toml").unwrap_or_default().to_owned();
                    let certificate = |name: &str| {
                        let wanted = format!("{base}{name}");
                        files.iter().find(|(n, _)| kind_of(n) == "trust-certificate" && n.replace('\\', "/") == wanted).map(|(_, text)| text.clone())
                    };
                    trust_list = validation::trust_list(&src, raw, &certificate, &mut errors);
                }
            }
        }
        [] => errors.push(PolicyError::file("trust-list.toml", "missing: the trust list must be defined".into())),
        _ => errors.push(PolicyError::file("trust-list.toml", "given more than once".into())),
    }

    let mut methods = Vec::new();
    let mut validation_policies: Vec<validation::ValidationPolicy> = Vec::new();
    // The validation policies services name, checked once every policy is read.
    let mut named_policies = Vec::new();
    let mut profiles = BTreeMap::new();
    let mut services: Vec<Service> = Vec::new();
    for (file, text) in &files {
        let src = Source { file, text };
        match kind_of(file) {
            "assurance" | "tsa" | "signing" | "trust-list" | "trust-certificate" => {}
            "validation" => match src.parse::<validation::ValidationFile>() {
                Err(e) => errors.push(e),
                Ok(raw) => {
                    if let Some(policy) = validation::validation_policy(&src, raw, &find_level, &mut errors) {
                        if validation_policies.iter().any(|p| p.id == policy.id) {
                            errors.push(PolicyError::file(file, format!("validation policy {:?} is defined twice", policy.id)));
                        }
                        validation_policies.push(policy);
                    }
                }
            },
            "methods" => match src.parse::<MethodsFile>() {
                Err(e) => errors.push(e),
                Ok(parsed) => {
                    src.check_version(&parsed.version, &mut errors);
                    for raw in parsed.method {
                        if methods.iter().any(|m: &Method| m.id == *raw.id.get_ref()) {
                            errors.push(src.err(&raw.id, format!("method {:?} is defined twice", raw.id.get_ref())));
                        }
                        if raw.amr.get_ref().is_empty() {
                            errors.push(src.err(&raw.amr, "a method needs at least one amr value (RFC 8176)"));
                        }
                        let certificate_policy = match &raw.certificate_policy {
                            None => None,
                            Some(oid) => match ObjectIdentifier::new(oid.get_ref()) {
                                Ok(o) if methods.iter().any(|m: &Method| m.certificate_policy == Some(o)) => {
                                    errors.push(src.err(oid, format!("certificate policy {o} names two methods")));
                                    None
                                }
                                Ok(o) => Some(o),
                                Err(_) => {
                                    errors.push(src.err(oid, format!("{:?} is not an object identifier", oid.get_ref())));
                                    None
                                }
                            },
                        };
                        let signature_policy = raw.signature_policy.as_ref().and_then(|oid| match ObjectIdentifier::new(oid.get_ref()) {
                            Ok(o) => Some(o),
                            Err(_) => {
                                errors.push(src.err(oid, format!("{:?} is not an object identifier", oid.get_ref())));
                                None
                            }
                        });
                        if signature_policy.is_some() && certificate_policy.is_none() {
                            errors.push(src.err(&raw.id, "signature_policy is for smart-ID methods, which have a certificate_policy"));
                        }
                        if let Some(level) = find_level(&src, &raw.level, &mut errors) {
                            methods.push(Method { id: raw.id.into_inner(), level, amr: raw.amr.into_inner(), name: raw.name, certificate_policy, signature_policy });
                        }
                    }
                }
            },
            "profile" => match src.parse::<ProfileFile>() {
                Err(e) => errors.push(e),
                Ok(raw) => {
                    if let Some(profile) = profile(&src, raw, &mut errors) {
                        if profiles.contains_key(&profile.name) {
                            errors.push(PolicyError::file(file, format!("profile {:?} is defined twice", profile.name)));
                        }
                        profiles.insert(profile.name.clone(), profile);
                    }
                }
            },
            "service" => match src.parse::<ServiceFile>() {
                Err(e) => errors.push(e),
                Ok(raw) => {
                    src.check_version(&raw.version, &mut errors);
                    let client_id = match raw.client_id.get_ref().parse::<crate::ClientId>() {
                        Ok(id) => Some(id),
                        Err(e) => {
                            errors.push(src.err(&raw.client_id, e.to_string()));
                            None
                        }
                    };
                    if services.iter().any(|s| s.client_id == *raw.client_id.get_ref()) {
                        errors.push(src.err(&raw.client_id, format!("client id {:?} is used by two services", raw.client_id.get_ref())));
                    }
                    if !raw.scopes.get_ref().iter().any(|s| s == "openid") {
                        errors.push(src.err(&raw.scopes, "scopes must include \"openid\""));
                    }
                    if raw.claims.get_ref().iter().any(|c| c == "national_id") && !raw.national_id {
                        errors.push(src.err(&raw.claims, "the national_id claim needs `national_id = true` (a legal basis to receive it)"));
                    }
                    if let (Some(min_level), Some(client_id)) = (find_level(&src, &raw.min_level, &mut errors), client_id) {
                        services.push(Service {
                            client_id,
                            name: raw.name,
                            min_level,
                            scopes: raw.scopes.into_inner(),
                            claims: raw.claims.into_inner(),
                            national_id: raw.national_id,
                            consent_required: raw.consent_required,
                            public_subject: raw.public_subject,
                            require_pkce: raw.require_pkce,
                            resource_servers: raw.resource_servers,
                            validation_policy: raw.validation_policy.map(|p| {
                                named_policies.push((file.as_str(), text.as_str(), p.span().start, p.get_ref().clone()));
                                p.into_inner()
                            }),
                            registration: raw.registration,
                        });
                    }
                }
            },
            _ => errors.push(PolicyError::file(
                file,
                "not a policy file (expected assurance.toml, methods.toml, tsa.toml, signing.toml, trust-list.toml, profiles/*.toml, services/*.toml, validation/*.toml or trust/*.pem)".into(),
            )),
        }
    }

    // Cross-file checks: issuers exist and are CAs.
    for p in profiles.values() {
        if let Some(issuer) = &p.issuer {
            match profiles.get(issuer) {
                Some(i) if i.is_ca() => {}
                Some(_) => errors.push(PolicyError::file(format!("profiles/{}.toml", p.name), format!("issuer {issuer:?} is not a CA profile"))),
                None => errors.push(PolicyError::file(format!("profiles/{}.toml", p.name), format!("issuer {issuer:?} has no profile"))),
            }
        }
    }
    // A certificate login method names a policy that some end-entity profile for client
    // authentication puts into certificates.
    for m in &methods {
        if let Some(oid) = m.certificate_policy {
            let issued = profiles.values().any(|p| {
                p.kind == ProfileKind::EndEntity && p.extended_key_usage.contains(&ExtendedKeyUsage::ClientAuth) && p.certificate_policies.contains(&oid)
            });
            if !issued {
                errors.push(PolicyError::file("methods.toml", format!("method {:?}: no client-authentication certificate profile carries policy {oid}", m.id)));
            }
        }
    }
    validation::check_policies(&validation_policies, &mut errors);
    for (file, text, offset, name) in named_policies {
        if !validation_policies.iter().any(|p| p.id == name) {
            let known: Vec<_> = validation_policies.iter().map(|p| p.id.as_str()).collect();
            errors.push(PolicyError::at(file, text, offset, format!("unknown validation policy {name:?} (known: {})", known.join(", "))));
        }
    }
    // A signature policy is one some end-entity signing profile puts into certificates.
    for m in &methods {
        if let Some(oid) = m.signature_policy
            && !profiles
                .values()
                .any(|p| p.kind == ProfileKind::EndEntity && p.key_usage.contains(&KeyUsage::NonRepudiation) && p.certificate_policies.contains(&oid))
        {
            errors.push(PolicyError::file("methods.toml", format!("method {:?}: no signing (nonRepudiation) certificate profile carries policy {oid}", m.id)));
        }
    }
    if methods.is_empty() && errors.0.is_empty() {
        errors.push(PolicyError::file("methods.toml", "missing: at least one authentication method must be defined".into()));
    }
    errors.into_result()?;
    let (Some(timestamping), Some(signing), Some(trust_list)) = (timestamping, signing, trust_list) else {
        return Err(PolicyErrors(vec![PolicyError::file("tsa.toml, signing.toml, trust-list.toml", "not read".into())]));
    };
    Ok(Policies { levels, methods, profiles, services, timestamping, signing, validation: validation_policies, trust_list })
}

fn timestamp_policy(src: &Source<'_>, raw: TsaFile, errors: &mut PolicyErrors) -> Option<TimestampPolicy> {
    let before = errors.0.len();
    src.check_version(&raw.version, errors);
    let policy = ObjectIdentifier::new(raw.policy.get_ref())
        .map_err(|_| errors.push(src.err(&raw.policy, format!("{:?} is not an object identifier", raw.policy.get_ref()))));
    if *raw.accuracy_seconds.get_ref() == 0 {
        errors.push(src.err(&raw.accuracy_seconds, "accuracy_seconds must be at least 1 (genTime has one-second resolution)"));
    }
    for name in raw.hash_algorithms.get_ref() {
        if !TSA_HASH_ALGORITHMS.contains(&name.get_ref().as_str()) {
            errors.push(src.err(name, format!("unknown or refused hash algorithm {:?} (expected {})", name.get_ref(), TSA_HASH_ALGORITHMS.join(", "))));
        }
    }
    if raw.hash_algorithms.get_ref().is_empty() {
        errors.push(src.err(&raw.hash_algorithms, "hash_algorithms must not be empty"));
    }
    match policy {
        Ok(policy) if errors.0.len() == before => Some(TimestampPolicy {
            policy,
            accuracy: Duration::from_secs(u64::from(raw.accuracy_seconds.into_inner())),
            hash_algorithms: raw.hash_algorithms.into_inner().into_iter().map(Spanned::into_inner).collect(),
        }),
        _ => None,
    }
}

fn profile(src: &Source<'_>, raw: ProfileFile, errors: &mut PolicyErrors) -> Option<CertificateProfile> {
    let before = errors.0.len();
    src.check_version(&raw.version, errors);
    let stem = std::path::Path::new(src.file).file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    if raw.name.get_ref() != stem {
        errors.push(src.err(&raw.name, format!("the profile name {:?} must match its file name {stem:?}", raw.name.get_ref())));
    }
    let kind = match raw.kind.get_ref().as_str() {
        "root" => ProfileKind::Root,
        "intermediate" => ProfileKind::Intermediate { path_length: raw.path_length.as_ref().map(|p| *p.get_ref()) },
        "end-entity" => ProfileKind::EndEntity,
        other => {
            errors.push(src.err(&raw.kind, format!("unknown kind {other:?} (expected root, intermediate or end-entity)")));
            ProfileKind::EndEntity
        }
    };
    if let Some(p) = &raw.path_length
        && !matches!(kind, ProfileKind::Intermediate { .. })
    {
        errors.push(src.err(p, "path_length is only for intermediate CAs"));
    }
    match (kind, &raw.issuer) {
        (ProfileKind::Root, Some(i)) => errors.push(src.err(i, "a root is its own issuer: remove `issuer`")),
        (ProfileKind::Intermediate { .. }, None) => errors.push(src.err(&raw.kind, "an intermediate CA needs an `issuer`")),
        _ => {}
    }
    let subject = match raw.subject.get_ref().as_str() {
        "natural-person" => SubjectKind::NaturalPerson,
        "organization" => SubjectKind::Organization,
        other => {
            errors.push(src.err(&raw.subject, format!("unknown subject {other:?} (expected natural-person or organization)")));
            SubjectKind::Organization
        }
    };
    if *raw.validity_days.get_ref() == 0 {
        errors.push(src.err(&raw.validity_days, "validity_days must be positive"));
    }
    let is_ca = !matches!(kind, ProfileKind::EndEntity);
    let signs_certs = raw.key_usage.get_ref().contains(&KeyUsage::KeyCertSign);
    if raw.key_usage.get_ref().is_empty() {
        errors.push(src.err(&raw.key_usage, "key_usage must not be empty"));
    }
    if is_ca != signs_certs {
        errors.push(src.err(&raw.key_usage, if is_ca { "a CA profile needs keyCertSign" } else { "only CA profiles may have keyCertSign" }));
    }
    if let Some(critical) = &raw.extended_key_usage_critical
        && *critical.get_ref()
        && raw.extended_key_usage.is_empty()
    {
        errors.push(src.err(critical, "extended_key_usage_critical without extended_key_usage"));
    }
    let mut certificate_policies = Vec::new();
    for oid in &raw.certificate_policies {
        match ObjectIdentifier::new(oid.get_ref()) {
            Ok(o) => certificate_policies.push(o),
            Err(_) => errors.push(src.err(oid, format!("{:?} is not an object identifier", oid.get_ref()))),
        }
    }
    let mut allowed_keys = Vec::new();
    for key in raw.allowed_keys.get_ref() {
        match key.get_ref().parse::<KeySpec>() {
            Ok(k) => allowed_keys.push(k),
            Err(e) => errors.push(src.err(key, e.to_string())),
        }
    }
    if raw.allowed_keys.get_ref().is_empty() {
        errors.push(src.err(&raw.allowed_keys, "allowed_keys must not be empty"));
    }
    let qc_statements = raw.qc_statements.map(|qc| {
        if is_ca || subject != SubjectKind::NaturalPerson {
            errors.push(src.err(&qc, "qc_statements are for natural-person end-entity certificates"));
        }
        let qc = qc.into_inner();
        QcStatements { compliance: qc.compliance, sscd: qc.sscd, qc_type: qc.qc_type, legislation: qc.legislation }
    });
    if errors.0.len() != before {
        return None;
    }
    Some(CertificateProfile {
        name: raw.name.into_inner(),
        kind,
        issuer: raw.issuer.map(Spanned::into_inner),
        subject,
        validity_days: raw.validity_days.into_inner(),
        key_usage: raw.key_usage.into_inner(),
        extended_key_usage: raw.extended_key_usage,
        extended_key_usage_critical: raw.extended_key_usage_critical.is_some_and(|c| c.into_inner()),
        certificate_policies,
        allowed_keys,
        crl_distribution_point: raw.crl_distribution_point,
        authority_info_access: raw.authority_info_access,
        ocsp_no_check: raw.ocsp_no_check,
        qc_statements,
    })
}
