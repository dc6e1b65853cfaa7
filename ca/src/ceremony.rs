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
