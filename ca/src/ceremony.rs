//! The key ceremony: creates the keys and certificates of the whole hierarchy.

use std::sync::Arc;

use hsm_shim::signer::StoredKeySigner;
use hsm_shim::{KeySpec, KeyStore};
use policies::{CertificateProfile, Policies};
use serde::Deserialize;
use store::{AuthorityRecord, CaStore, CeremonyRecord};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::authority::{Authority, Subject};
use crate::profile::{Contents, certificate_params};
use crate::{CaError, names};

/// The ceremony's choices: names, countries, URLs and the key of each authority.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CeremonyConfig {
    /// ISO 3166-1 alpha-2 country of the hierarchy (C in CA names; the QcCClegislation of
    /// qualified certificates).
    pub country: String,
    /// The organization operating the PKI (O in CA and service names).
    pub organization: String,
    /// The PKI publication base written into certificates (caIssuers, CRL distribution
    /// points, OCSP): plain `http://`, as ETSI EN 319 412-2 and relying parties expect. The
    /// server must answer there. It is not the OpenID Connect issuer, which is a setting of
    /// the data directory and may (in production, must) be `https://`.
    pub base_url: String,
    /// The National Root CA.
    pub root: AuthorityConfig,
    /// The Citizen Authentication CA.
    pub citizen_authentication_ca: AuthorityConfig,
    /// The Citizen Signing CA.
    pub citizen_signing_ca: AuthorityConfig,
    /// The Services CA.
    pub services_ca: AuthorityConfig,
    /// The delegated OCSP responders (one per issuing CA, all alike).
    pub ocsp_responder: AuthorityConfig,
    /// The timestamp authority.
    pub tsa: AuthorityConfig,
    /// The signature validation service, whose key signs validation reports; when left out,
    /// "<organization> Validation Service" with a key of the TSA's type.
    #[serde(default)]
    pub validation_service: Option<AuthorityConfig>,
}

/// One authority's name and key.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorityConfig {
    /// Its common name (for OCSP responders, suffixed with the CA's name).
    pub common_name: String,
    /// Its key type (`ec-p256`, `ec-p384`, `rsa-3072`, …).
    pub key: String,
}

impl CeremonyConfig {
    /// Checks the choices that need no key store: the country and the publication base.
    /// [`run`] checks them first too; callers check before they create anything.
    pub fn check(&self) -> Result<(), CaError> {
        if self.country.len() != 2 || !self.country.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(CaError::Config(format!("country {:?} is not an ISO 3166-1 alpha-2 code such as JO", self.country)));
        }
        check_publication_url(&self.base_url)
    }
}

/// The publication base must be a plain `http://` URL of a host, without query, fragment or
/// credentials: relying parties fetch CRLs and CA certificates over plain HTTP (they are
/// signed; HTTPS would need revocation checking of its own), and ETSI EN 319 412-2
/// GEN-4.3.11-4 requires a CRL distribution point over http:// or ldap:// (pkilint's ETSI
/// linter reports an https-only one as an error).
fn check_publication_url(base_url: &str) -> Result<(), CaError> {
    let bad = |why: &str| Err(CaError::Config(format!("base_url {base_url:?} {why}")));
    if base_url.starts_with("https://") {
        return bad(concat!(
            "must be plain http://: CRL distribution points, OCSP and caIssuers are published over http (ETSI EN 319 412-2 GEN-4.3.11-4); ",
            "an https:// OpenID Connect issuer is a setting of its own (serve --issuer, HAWIYA_ISSUER or `issuer` in hawiya.toml)"
        ));
    }
    let Some(rest) = base_url.strip_prefix("http://") else { return bad("must be an http:// URL, such as http://pki.example.jo") };
    let host = rest.split(['/', ':']).next().unwrap_or_default();
    if host.is_empty() || !base_url.bytes().all(|b| b.is_ascii_graphic()) || base_url.contains(['?', '#', '@', '\\']) {
        return bad("must be an http:// URL of a host, without spaces, query, fragment or credentials, such as http://pki.example.jo");
    }
    Ok(())
}

struct Step<'a> {
    name: String,
    profile: &'a str,
    issuer: &'a str,
    config: &'a AuthorityConfig,
    common_name: String,
}

/// Runs the ceremony: refuses if the store already has a hierarchy; generates every key in
/// `keys`, signs the certificates, stores them and the root's first ARL, and records the
/// ceremony last (that record is what makes the hierarchy exist).
pub async fn run(config: &CeremonyConfig, keys: Arc<dyn KeyStore>, store: Arc<dyn CaStore>, policies: Arc<Policies>) -> Result<Authority, CaError> {
    config.check()?;
    if let Some(existing) = store.ceremony().await? {
        return Err(CaError::CeremonyExists(format!(
            "this data already holds a CA hierarchy (ceremony of {}); refusing to run another",
            existing.performed_at
        )));
    }
    let started = OffsetDateTime::now_utc();
    let stamp = started.unix_timestamp();
    let mut steps =
        vec![Step { name: names::ROOT.into(), profile: "root-ca", issuer: names::ROOT, config: &config.root, common_name: config.root.common_name.clone() }];
    for (name, c) in [
        (names::CITIZEN_AUTHENTICATION, &config.citizen_authentication_ca),
        (names::CITIZEN_SIGNING, &config.citizen_signing_ca),
        (names::SERVICES, &config.services_ca),
    ] {
        steps.push(Step { name: name.into(), profile: name, issuer: names::ROOT, config: c, common_name: c.common_name.clone() });
    }
    for ca in names::ISSUING {
        let display = match ca {
            names::CITIZEN_AUTHENTICATION => &config.citizen_authentication_ca.common_name,
            names::CITIZEN_SIGNING => &config.citizen_signing_ca.common_name,
            _ => &config.services_ca.common_name,
        };
        steps.push(Step {
            name: names::ocsp_responder(ca),
            profile: "ocsp-responder",
            issuer: ca,
            config: &config.ocsp_responder,
            common_name: format!("{} - {display}", config.ocsp_responder.common_name),
        });
    }
    steps.push(Step {
        name: names::TSA.into(),
        profile: "timestamping",
        issuer: names::SERVICES,
        config: &config.tsa,
        common_name: config.tsa.common_name.clone(),
    });

    let validation_service = config
        .validation_service
        .clone()
        .unwrap_or_else(|| AuthorityConfig { common_name: format!("{} Validation Service", config.organization), key: config.tsa.key.clone() });
    steps.push(Step {
        name: names::VALIDATION_SERVICE.into(),
        profile: "validation-service",
        issuer: names::SERVICES,
        config: &validation_service,
        common_name: validation_service.common_name.clone(),
    });

    // The audit log's checkpoints: "<organization> Audit Log", a key of the TSA's type.
    let audit_log = AuthorityConfig { common_name: format!("{} Audit Log", config.organization), key: config.tsa.key.clone() };
    steps.push(Step {
        name: names::AUDIT_LOG.into(),
        profile: "audit-log",
        issuer: names::SERVICES,
        config: &audit_log,
        common_name: audit_log.common_name.clone(),
    });

    let mut record = CeremonyRecord {
        performed_at: started.format(&Rfc3339).map_err(|e| CaError::Encoding(e.to_string()))?,
        country: config.country.clone(),
        base_url: config.base_url.trim_end_matches('/').to_owned(),
        authorities: Vec::new(),
        renewals: Vec::new(),
    };
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let mut stored = Vec::new();
    for step in &steps {
        let profile = policies.profile(step.profile).ok_or_else(|| CaError::UnknownProfile(step.profile.into()))?;
        let spec: KeySpec = step.config.key.parse()?;
        if !profile.allowed_keys.contains(&spec) {
            return Err(CaError::Config(format!("{}: profile {:?} does not allow {spec} keys", step.name, profile.name)));
        }
        let key = keys.generate(spec, &format!("{}-{stamp}", step.name))?;
        let signer = StoredKeySigner::new(keys.clone(), key.clone(), spec.default_algorithm())?;
        let subject =
            Subject::Organization { country: config.country.clone(), organization: config.organization.clone(), common_name: step.common_name.clone() };
        subject.validate()?;
        let serial = Authority::new_serial(&rng)?;
        let certificate = if step.name == names::ROOT {
            self_signed_root(profile, &subject, &signer, &serial)?
        } else {
            // Partial authority over what has been made so far, to sign the next step.
            let so_far = Authority::from_record(store.clone(), keys.clone(), policies.clone(), record.clone())?;
            let issuer = so_far.member(step.issuer)?;
            so_far.sign_certificate(issuer, profile, &subject, signer.public_key(), &serial)?
        };
        record.authorities.push(AuthorityRecord {
            name: step.name.clone(),
            profile: profile.name.clone(),
            issuer: step.issuer.into(),
            key: key.to_string(),
            algorithm: signer.algorithm().to_string(),
            certificate: hex::encode(&certificate.der),
        });
        stored.push(store::NewCertificate { issuer: step.issuer.into(), ..certificate });
        tracing::info!(target: "audit", event = "ceremony.key_generated", authority = %step.name, key = %key, profile = step.profile, "ceremony step done");
    }
    for certificate in &stored {
        store.insert_certificate(certificate).await?;
    }
    let authority = Authority::from_record(store.clone(), keys, policies, record.clone())?;
    authority.publish_crl(names::ROOT).await?;
    store.put_ceremony(&record).await.map_err(|e| match e {
        store::StoreError::CeremonyExists(when) => {
            CaError::CeremonyExists(format!("another ceremony completed meanwhile ({when}); this one's keys are unused"))
        }
        other => other.into(),
    })?;
    tracing::info!(target: "audit", event = "ceremony.recorded", performed_at = %record.performed_at, "ceremony recorded");
    Ok(authority)
}

/// What a renewal made.
#[derive(Debug)]
pub struct Renewal {
    /// The record of it, as stored in the ceremony record.
    pub record: store::RenewalRecord,
    /// The new generation's key in the key store.
    pub key: String,
    /// The new generation's common name.
    pub common_name: String,
    /// When the replaced generation's certificate expires: it publishes CRLs and answers
    /// OCSP for what it issued until then (its end-entity certificates never outlive it).
    pub replaced_until: i64,
    /// The authority with the new generation, which issues from now on.
    pub authority: Authority,
}

/// Renews issuing CA `ca` (`citizen-authentication-ca`, `citizen-signing-ca`,
/// `services-ca`): a new key in `keys` of the current generation's type, a certificate for it
/// signed by the root, a delegated OCSP responder certificate under it, and the ceremony
/// record extended with both and a [`store::RenewalRecord`]. New issuance moves to the new
/// generation; the old one keeps its key, its responder and its CRL.
///
/// The new generation's subject is the CA's with " G<n>" appended to its common name
/// ("Hawiya Citizen Authentication CA G2"), as national and public CAs name their
/// generations (Estonia's ESTEID2018 after ESTEID-SK 2015, "... Root G2"). RFC 5280 allows
/// the same name with a new key, but then relying parties must tell the generations apart by
/// key identifier alone: chain building, CRL matching (a CRL names its issuer, not its key)
/// and caches keyed by issuer name break in the many that do not. Distinct names keep each
/// certificate, CRL and OCSP CertID unambiguous.
///
/// Refused, with nothing created: an unknown or non-renewable name; no ceremony; and a
/// second renewal while the generation the last renewal made has issued nothing but its own
/// OCSP responder certificate (a repeated command, which would retire a key never used).
pub async fn renew(keys: Arc<dyn KeyStore>, store: Arc<dyn CaStore>, policies: Arc<Policies>, ca: &str) -> Result<Renewal, CaError> {
    if !names::ISSUING.contains(&ca) {
        return Err(CaError::NotRenewable(format!("{ca:?} is not an issuing CA; renewable: {}", names::ISSUING.join(", "))));
    }
    let previous = store.ceremony().await?.ok_or(CaError::NoCeremony)?;
    let authority = Authority::from_record(store.clone(), keys.clone(), policies.clone(), previous.clone())?;
    let generations = authority.generations(ca).len();
    let current = authority.current(ca)?;
    if let Some(last) = previous.renewals.iter().rev().find(|r| r.ca == ca) {
        let issued = store.list(Some(&current.name), 2).await?;
        if issued.iter().all(|r| r.certificate.profile == "ocsp-responder") {
            return Err(CaError::NotRenewable(format!(
                "{} (renewed {}) has issued no certificate yet; renewing it again would retire a key that never issued",
                current.name, last.performed_at
            )));
        }
    }
    let started = OffsetDateTime::now_utc();
    let performed_at = started.format(&Rfc3339).map_err(|e| CaError::Encoding(e.to_string()))?;
    let next = names::generation(ca, generations + 1);
    let responder_name = names::ocsp_responder(&next);
    let suffix = format!(" G{}", generations + 1);
    // The first generation's names, so that G3 follows G2 rather than "G2 G3".
    let first = authority.member(ca)?;
    let first_responder = authority.member(&names::ocsp_responder(ca))?;
    let subject = renamed(&first.parsed.tbs_certificate.subject, &suffix)?;
    let responder_subject = renamed(&first_responder.parsed.tbs_certificate.subject, &suffix)?;
    subject.validate()?;
    responder_subject.validate()?;
    let profile = policies.profile(ca).ok_or_else(|| CaError::UnknownProfile(ca.into()))?;
    let responder_profile = policies.profile("ocsp-responder").ok_or_else(|| CaError::UnknownProfile("ocsp-responder".into()))?;
    let (spec, responder_spec) = (current.signer.public_key().spec(), authority.member(&names::ocsp_responder(&current.name))?.signer.public_key().spec());
    for (p, spec) in [(profile, spec), (responder_profile, responder_spec)] {
        if !p.allowed_keys.contains(&spec) {
            return Err(CaError::Config(format!("profile {:?} no longer allows {spec} keys", p.name)));
        }
    }

    let stamp = started.unix_timestamp();
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let mut record = previous.clone();
    let mut stored = Vec::new();
    for (name, issuer, profile, spec, subject) in
        [(&next, names::ROOT, profile, spec, &subject), (&responder_name, next.as_str(), responder_profile, responder_spec, &responder_subject)]
    {
        let key = keys.generate(spec, &format!("{name}-{stamp}"))?;
        let signer = StoredKeySigner::new(keys.clone(), key.clone(), spec.default_algorithm())?;
        // The responder is signed by the new generation: an authority over the record so far.
        let so_far = Authority::from_record(store.clone(), keys.clone(), policies.clone(), record.clone())?;
        let serial = Authority::new_serial(&rng)?;
        let certificate = so_far.sign_certificate(so_far.member(issuer)?, profile, subject, signer.public_key(), &serial)?;
        record.authorities.push(AuthorityRecord {
            name: name.clone(),
            profile: profile.name.clone(),
            issuer: issuer.into(),
            key: key.to_string(),
            algorithm: signer.algorithm().to_string(),
            certificate: hex::encode(&certificate.der),
        });
        stored.push(certificate);
        tracing::info!(target: "audit", event = "ceremony.key_generated", authority = %name, key = %key, profile = %profile.name, "renewal step done");
    }
    let renewal = store::RenewalRecord { performed_at, ca: ca.to_owned(), generation: next.clone(), replaces: current.name.clone() };
    record.renewals.push(renewal.clone());
    let replaced_until = current.not_after.unix_timestamp();
    let renewed = Authority::from_record(store.clone(), keys, policies, record.clone())?;
    // The record and the two certificates, all or nothing: a concurrent renewal that got there
    // first leaves this one's keys unused and nothing else.
    store.update_ceremony(&previous, &record, &stored).await?;
    tracing::info!(
        target: "audit",
        event = "ca.renewed",
        ca,
        generation = %next,
        replaces = %renewal.replaces,
        replaced_until,
        "issuing CA renewed; the replaced generation keeps answering OCSP and publishing CRLs"
    );
    let key = record.authorities.iter().find(|a| a.name == next).map(|a| a.key.clone()).unwrap_or_default();
    let common_name = common_name(&renewed.member(&next)?.parsed.tbs_certificate.subject).unwrap_or_default();
    Ok(Renewal { record: renewal, key, common_name, replaced_until, authority: renewed })
}

const COUNTRY: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("2.5.4.6");
const ORGANIZATION: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("2.5.4.10");
const COMMON_NAME: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("2.5.4.3");

/// The organization subject `name` (C, O, CN) with `suffix` appended to its common name.
/// A renewed OCSP responder: which, its new key, and until when its certificate answers.
#[derive(Debug)]
pub struct ResponderRenewal {
    /// The responder (`citizen-signing-ca-ocsp`, …).
    pub responder: String,
    /// The new key in the key store.
    pub key: String,
    /// The new certificate's notAfter, Unix seconds.
    pub not_after: i64,
}

/// The generations of issuing CAs whose delegated OCSP responder's certificate ends before
/// `before` (Unix seconds), soonest first: the CA, its responder, and that end.
pub async fn responders_due(
    keys: Arc<dyn KeyStore>,
    store: Arc<dyn CaStore>,
    policies: Arc<Policies>,
    before: i64,
) -> Result<Vec<(String, String, i64)>, CaError> {
    let record = store.ceremony().await?.ok_or(CaError::NoCeremony)?;
    let authority = Authority::from_record(store, keys, policies, record)?;
    let mut due = Vec::new();
    for ca in names::ISSUING {
        for generation in authority.generations(ca) {
            let responder = authority.member(&names::ocsp_responder(generation))?;
            let ends = responder.not_after.unix_timestamp();
            if ends < before {
                due.push((generation.to_owned(), responder.name.clone(), ends));
            }
        }
    }
    due.sort_by_key(|(_, _, ends)| *ends);
    Ok(due)
}

/// Renews the delegated OCSP responder of issuing CA `ca` (any generation, by name): a new
/// key of the same type and a certificate for it under `ca`, with the same subject, in place
/// of the old one in the ceremony record (the old certificate stays in the store).
/// Responder certificates live a year and cannot be revoked (id-pkix-ocsp-nocheck), while
/// the CA's certificates live years: every generation's responder is renewed, before it
/// ends, for as long as its CA has certificates to answer for.
pub async fn renew_responder(keys: Arc<dyn KeyStore>, store: Arc<dyn CaStore>, policies: Arc<Policies>, ca: &str) -> Result<ResponderRenewal, CaError> {
    let previous = store.ceremony().await?.ok_or(CaError::NoCeremony)?;
    let authority = Authority::from_record(store.clone(), keys.clone(), policies.clone(), previous.clone())?;
    let issuer = authority.member(ca)?;
    if !names::ISSUING.contains(&issuer.profile.name.as_str()) {
        return Err(CaError::NotRenewable(format!("{ca:?} is not an issuing CA and has no OCSP responder")));
    }
    let responder = names::ocsp_responder(ca);
    let old = authority.member(&responder)?;
    let profile = policies.profile("ocsp-responder").ok_or_else(|| CaError::UnknownProfile("ocsp-responder".into()))?;
    let spec = old.signer.public_key().spec();
    if !profile.allowed_keys.contains(&spec) {
        return Err(CaError::Config(format!("profile {:?} no longer allows {spec} keys", profile.name)));
    }
    let mut unique = [0u8; 4];
    aws_lc_rs::rand::fill(&mut unique).map_err(|_| CaError::Encoding("no randomness for a key label".into()))?;
    let label = format!("{responder}-{}-{}", OffsetDateTime::now_utc().unix_timestamp(), hex::encode(unique));
    let key = keys.generate(spec, &label)?;
    let signer = StoredKeySigner::new(keys.clone(), key.clone(), spec.default_algorithm())?;
    // The same subject.
    let subject = renamed(&old.parsed.tbs_certificate.subject, "")?;
    subject.validate()?;
    let serial = Authority::new_serial(&aws_lc_rs::rand::SystemRandom::new())?;
    let certificate = authority.sign_certificate(issuer, profile, &subject, signer.public_key(), &serial)?;
    let not_after = certificate.not_after;
    let mut record = previous.clone();
    let entry = record
        .authorities
        .iter_mut()
        .find(|a| a.name == responder)
        .ok_or_else(|| CaError::NotRenewable(format!("{responder} is not in the ceremony record")))?;
    entry.key = key.to_string();
    entry.algorithm = signer.algorithm().to_string();
    entry.certificate = hex::encode(&certificate.der);
    // The record and the certificate, all or nothing, and only over the record read above.
    store.update_ceremony(&previous, &record, &[certificate]).await?;
    tracing::info!(target: "audit", event = "ceremony.key_generated", authority = %responder, key = %key, profile = %profile.name, "OCSP responder key generated");
    tracing::info!(target: "audit", event = "ocsp.responder_renewed", responder = %responder, ca, not_after, "OCSP responder certificate renewed");
    Ok(ResponderRenewal { responder, key: key.to_string(), not_after })
}

fn renamed(name: &x509_cert::name::Name, suffix: &str) -> Result<Subject, CaError> {
    let attribute = |oid| attribute(name, oid);
    let missing = |what: &str| CaError::Encoding(format!("the CA's subject has no {what}"));
    Ok(Subject::Organization {
        country: attribute(COUNTRY).ok_or_else(|| missing("C"))?,
        organization: attribute(ORGANIZATION).ok_or_else(|| missing("O"))?,
        common_name: format!("{}{suffix}", common_name(name).ok_or_else(|| missing("CN"))?),
    })
}

fn common_name(name: &x509_cert::name::Name) -> Option<String> {
    attribute(name, COMMON_NAME)
}

fn attribute(name: &x509_cert::name::Name, oid: der::asn1::ObjectIdentifier) -> Option<String> {
    name.0.iter().flat_map(|rdn| rdn.0.iter()).find(|atv| atv.oid == oid).and_then(|atv| std::str::from_utf8(atv.value.value()).ok().map(str::to_owned))
}

fn self_signed_root(
    profile: &CertificateProfile,
    subject: &Subject,
    signer: &StoredKeySigner,
    serial: &store::Serial,
) -> Result<store::NewCertificate, CaError> {
    signer.check_rcgen()?;
    let not_before = OffsetDateTime::from_unix_timestamp(crate::now()).map_err(|e| CaError::Encoding(e.to_string()))?;
    let not_after = not_before + time::Duration::days(i64::from(profile.validity_days));
    let params = certificate_params(&Contents {
        profile,
        subject,
        key: signer.public_key(),
        serial: serial.as_bytes(),
        not_before,
        not_after,
        urls: None,
        legislation: "",
    })?;
    let der = params.self_signed(signer)?.der().to_vec();
    let parsed = <x509_cert::Certificate as der::Decode>::from_der(&der)?;
    Ok(crate::authority::record(serial, names::ROOT, profile, &parsed, der))
}

#[cfg(test)]
mod tests {
    use super::check_publication_url;

    #[test]
    fn the_publication_base_is_plain_http() {
        for good in ["http://pki.hawiya.jo", "http://127.0.0.1:8080", "http://pki.example.jo/hawiya/"] {
            assert!(check_publication_url(good).is_ok(), "{good}");
        }
        let e = check_publication_url("https://pki.hawiya.jo").expect_err("https refused").to_string();
        assert!(e.contains("must be plain http://") && e.contains("ETSI EN 319 412-2 GEN-4.3.11-4"), "{e}");
        for bad in ["ldap://pki.hawiya.jo", "pki.hawiya.jo", "http://", "http:///crl", "http://pki.hawiya.jo/?x=1", "http://u@pki.hawiya.jo", "http://pki .jo"]
        {
            let e = check_publication_url(bad).expect_err(bad).to_string();
            assert!(e.starts_with(&format!("ceremony configuration: base_url {bad:?} must be an http:// URL")), "{e}");
        }
    }
}
