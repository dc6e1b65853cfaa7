//! The authority: issues, revokes, suspends and publishes CRLs with the ceremony's keys.

use std::sync::Arc;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use der::{Decode, Encode, Tagged};
use hsm_shim::signer::StoredKeySigner;
use hsm_shim::{KeyRef, KeyStore, PublicKey, SignatureAlgorithm};
use policies::{CertificateProfile, NationalId, Policies, ProfileKind};
use rcgen::{
    CertificateParams, CertificateRevocationListParams, CrlDistributionPoint, CrlIssuingDistributionPoint, CrlScope, DistinguishedName, DnType, DnValue,
    Issuer, KeyIdMethod, RevokedCertParams, SerialNumber,
};
use store::{CaStore, CeremonyRecord, NewCertificate, PublishedCrl, RevocationReason, Serial, StoreError};
use time::{Duration, OffsetDateTime};
use x509_cert::Certificate;

use crate::metrics::CaMetrics;
use crate::profile::{Contents, IssuerUrls, SubjectKey, certificate_params, key_identifier};
use crate::{CaError, csr};

/// Whose name goes into a certificate. For citizens this comes from the registration
/// officer's proofing, never from the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    /// A citizen (ETSI EN 319 412-2 natural person).
    NaturalPerson {
        /// givenName, Latin script.
        given_name: String,
        /// surname, Latin script.
        surname: String,
        /// The national identity number.
        national_id: NationalId,
        /// ISO 3166-1 alpha-2 country of the national id.
        country: String,
    },
    /// An organization or one of its services.
    Organization {
        /// ISO 3166-1 alpha-2 country.
        country: String,
        /// O.
        organization: String,
        /// CN.
        common_name: String,
    },
}

impl Subject {
    /// Refuses empty, over-long or ill-formed fields with the field's name.
    pub fn validate(&self) -> Result<(), CaError> {
        let bad = |m: String| Err(CaError::InvalidSubject(m));
        let name = |field: &str, v: &str| {
            if v.trim().is_empty() {
                return bad(format!("{field} is empty"));
            }
            if v.chars().count() > 64 || v.chars().any(char::is_control) {
                return bad(format!("{field} must be 1 to 64 printable characters"));
            }
            Ok(())
        };
        let country = |v: &str| {
            if v.len() == 2 && v.bytes().all(|b| b.is_ascii_uppercase()) { Ok(()) } else { bad(format!("country {v:?} is not an ISO 3166 code such as JO")) }
        };
        match self {
            // The national id is a NationalId: it follows the project's one rule already.
            Subject::NaturalPerson { given_name, surname, national_id: _, country: cc } => {
                name("given name", given_name)?;
                name("surname", surname)?;
                country(cc)?;
                if given_name.chars().count() + surname.chars().count() + 1 > 64 {
                    return bad("given name and surname together exceed the 64 characters of a common name".into());
                }
                Ok(())
            }
            Subject::Organization { country: cc, organization, common_name } => {
                country(cc)?;
                name("organization", organization)?;
                name("common name", common_name)
            }
        }
    }
}

/// What to issue.
#[derive(Clone, Debug)]
pub struct IssueRequest {
    /// The profile name (`citizen-authentication`, `citizen-signature`, …).
    pub profile: String,
    /// The PKCS#10 request, PEM or DER.
    pub csr: Vec<u8>,
    /// The proven identity.
    pub subject: Subject,
}

/// An issued certificate, already stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issued {
    /// Its serial number.
    pub serial: Serial,
    /// The issuing authority's name.
    pub issuer: String,
    /// The certificate.
    pub der: Vec<u8>,
}

impl Issued {
    /// The certificate as PEM.
    pub fn pem(&self) -> String {
        pem("CERTIFICATE", &self.der)
    }
}

/// Encodes DER as PEM with 64-column lines.
pub fn pem(label: &str, der: &[u8]) -> String {
    der::pem::encode_string(label, der::pem::LineEnding::LF, der).unwrap_or_default()
}

/// One key and certificate of the hierarchy.
#[derive(Debug)]
pub(crate) struct Member {
    pub name: String,
    pub profile: CertificateProfile,
    pub certificate: Vec<u8>,
    pub parsed: Certificate,
    pub signer: StoredKeySigner,
    pub dn: DistinguishedName,
    pub ski: Vec<u8>,
    pub not_after: OffsetDateTime,
}

impl Member {
    /// This member as an rcgen issuer.
    fn issuer(&self) -> Result<Issuer<'_, &StoredKeySigner>, CaError> {
        self.signer.check_rcgen()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = self.dn.clone();
        params.key_identifier_method = KeyIdMethod::PreSpecified(self.ski.clone());
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
        Ok(Issuer::new(params, &self.signer))
    }
}

/// The certificate authority, loaded from a completed ceremony.
#[derive(Debug)]
pub struct Authority {
    store: Arc<dyn CaStore>,
    policies: Arc<Policies>,
    ceremony: CeremonyRecord,
    members: Vec<Member>,
    rng: SystemRandom,
    metrics: Arc<CaMetrics>,
}

/// CRL lifetimes: issuing CAs publish daily, the offline root yearly.
const ISSUING_CRL_VALIDITY: Duration = Duration::days(1);
const ROOT_CRL_VALIDITY: Duration = Duration::days(365);

impl Authority {
    /// Loads the hierarchy recorded in the store; checks that each key in the key store is
    /// the one its certificate certifies.
    pub async fn load(store: Arc<dyn CaStore>, keys: Arc<dyn KeyStore>, policies: Arc<Policies>) -> Result<Self, CaError> {
        let ceremony = store.ceremony().await?.ok_or(CaError::NoCeremony)?;
        Self::from_record(store, keys, policies, ceremony)
    }

    pub(crate) fn from_record(store: Arc<dyn CaStore>, keys: Arc<dyn KeyStore>, policies: Arc<Policies>, ceremony: CeremonyRecord) -> Result<Self, CaError> {
        let mut members = Vec::new();
        for a in &ceremony.authorities {
            let corrupt = |m: String| CaError::Store(StoreError::Corrupt(format!("ceremony record, {}: {m}", a.name)));
            let profile = policies.profile(&a.profile).ok_or_else(|| CaError::UnknownProfile(a.profile.clone()))?.clone();
            let key: KeyRef = a.key.parse()?;
            let algorithm: SignatureAlgorithm = a.algorithm.parse()?;
            let signer = StoredKeySigner::new(keys.clone(), key, algorithm)?;
            let certificate = hex::decode(&a.certificate).map_err(|e| corrupt(e.to_string()))?;
            let parsed = Certificate::from_der(&certificate).map_err(|e| corrupt(e.to_string()))?;
            let spki = parsed.tbs_certificate.subject_public_key_info.to_der()?;
            if spki != signer.public_key().spki_der() {
                return Err(corrupt(format!("key {} is not the key its certificate certifies", a.key)));
            }
            let not_after = OffsetDateTime::from_unix_timestamp(parsed.tbs_certificate.validity.not_after.to_unix_duration().as_secs() as i64)
                .map_err(|e| corrupt(e.to_string()))?;
            members.push(Member {
                name: a.name.clone(),
                dn: rcgen_name(&parsed.tbs_certificate.subject)?,
                ski: key_identifier(signer.public_key()),
                profile,
                certificate,
                parsed,
                signer,
                not_after,
            });
        }
        Ok(Authority { store, policies, ceremony, members, rng: SystemRandom::new(), metrics: Arc::default() })
    }

    /// The ceremony this authority was built from.
    pub fn ceremony(&self) -> &CeremonyRecord {
        &self.ceremony
    }

    /// What the authority, its OCSP responder and its TSA count.
    pub fn metrics(&self) -> &Arc<CaMetrics> {
        &self.metrics
    }

    /// The durable store.
    pub fn store(&self) -> &Arc<dyn CaStore> {
        &self.store
    }

    /// The policy files the authority applies.
    pub fn policies(&self) -> &Policies {
        &self.policies
    }

    pub(crate) fn member(&self, name: &str) -> Result<&Member, CaError> {
        self.members.iter().find(|m| m.name == name).ok_or_else(|| CaError::UnknownAuthority {
            name: name.to_owned(),
            known: self.members.iter().filter(|m| m.profile.is_ca()).map(|m| m.name.as_str()).collect::<Vec<_>>().join(", "),
        })
    }

    /// The certificate (DER) of a CA or service identity by name.
    pub fn certificate(&self, name: &str) -> Result<&[u8], CaError> {
        Ok(&self.member(name)?.certificate)
    }

    /// What signs validation reports: the validation service's key, and its chain (its
    /// certificate, the Services CA's, the root's). A hierarchy made before the validation
    /// service existed has none: [`CaError::UnknownAuthority`].
    pub fn validation_service(&self) -> Result<(&StoredKeySigner, Vec<&[u8]>), CaError> {
        let service = self.member(crate::names::VALIDATION_SERVICE)?;
        let chain =
            [crate::names::VALIDATION_SERVICE, crate::names::SERVICES, crate::names::ROOT].iter().map(|n| self.certificate(n)).collect::<Result<_, _>>()?;
        Ok((&service.signer, chain))
    }

    /// What signs the audit log's checkpoints: its key and certificate (DER). A hierarchy made
    /// before the audit log existed has none: [`CaError::UnknownAuthority`].
    pub fn audit_log(&self) -> Result<(&StoredKeySigner, &[u8]), CaError> {
        let member = self.member(crate::names::AUDIT_LOG)?;
        Ok((&member.signer, &member.certificate))
    }

    /// The generation of issuing CA `ca` that issues now: the newest of those made with its
    /// profile (the ceremony's, then each renewal's, see [`crate::ceremony::renew`]).
    pub(crate) fn current(&self, ca: &str) -> Result<&Member, CaError> {
        self.members.iter().rev().find(|m| m.profile.is_ca() && m.profile.name == ca).map_or_else(|| self.member(ca), Ok)
    }

    /// The name of the generation of issuing CA `ca` that issues now (`ca` itself until it
    /// is first renewed).
    pub fn current_generation(&self, ca: &str) -> Result<&str, CaError> {
        self.current(ca).map(|m| m.name.as_str())
    }

    /// Every generation of issuing CA `ca`, oldest first: all of them answer OCSP and
    /// publish CRLs for what they issued.
    pub fn generations(&self, ca: &str) -> Vec<&str> {
        self.members.iter().filter(|m| m.profile.is_ca() && m.profile.name == ca).map(|m| m.name.as_str()).collect()
    }

    /// The name of the issuing CA, of whichever generation, that issued `certificate` (DER):
    /// the one whose subject is its issuer name (generations have distinct names).
    pub fn issuer_of(&self, certificate: &[u8]) -> Result<&str, CaError> {
        let issuer = Certificate::from_der(certificate)?.tbs_certificate.issuer;
        self.issuing_cas().find(|m| m.parsed.tbs_certificate.subject == issuer).map(|m| m.name.as_str()).ok_or_else(|| CaError::UnknownAuthority {
            name: issuer.to_string(),
            known: self.issuing_cas().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", "),
        })
    }

    /// The issuing CAs of every generation (not the root), in the record's order.
    pub(crate) fn issuing_cas(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(|m| matches!(m.profile.kind, ProfileKind::Intermediate { .. }))
    }

    /// The names of the CAs (root and issuing), in ceremony order.
    pub fn ca_names(&self) -> Vec<&str> {
        self.members.iter().filter(|m| m.profile.is_ca()).map(|m| m.name.as_str()).collect()
    }

    /// The URLs certificates issued by `issuer` point at.
    pub(crate) fn urls(base_url: &str, issuer: &str) -> IssuerUrls {
        let base = base_url.trim_end_matches('/');
        IssuerUrls { ca_issuers: format!("{base}/ca/{issuer}.crt"), crl: format!("{base}/crl/{issuer}.crl"), ocsp: format!("{base}/ocsp") }
    }

    /// A fresh serial number: 16 random octets, positive, never shorter (RFC 5280, CA/B).
    pub(crate) fn new_serial(rng: &SystemRandom) -> Result<Serial, CaError> {
        let mut bytes = vec![0u8; 16];
        rng.fill(&mut bytes).map_err(|_| CaError::Encoding("random serial".into()))?;
        bytes[0] = (bytes[0] & 0x7f) | 0x40;
        Serial::new(bytes).map_err(CaError::Encoding)
    }

    /// Builds and signs a certificate of `profile` for `subject`'s `key` by `issuer`.
    pub(crate) fn sign_certificate(
        &self,
        issuer: &Member,
        profile: &CertificateProfile,
        subject: &Subject,
        key: &PublicKey,
        serial: &Serial,
    ) -> Result<NewCertificate, CaError> {
        let not_before = OffsetDateTime::from_unix_timestamp(crate::now()).map_err(|e| CaError::Encoding(e.to_string()))?;
        let not_after = (not_before + Duration::days(i64::from(profile.validity_days))).min(issuer.not_after);
        let urls = Self::urls(&self.ceremony.base_url, &issuer.name);
        let params = certificate_params(&Contents {
            profile,
            subject,
            key,
            serial: serial.as_bytes(),
            not_before,
            not_after,
            urls: Some(&urls),
            legislation: &self.ceremony.country,
        })?;
        let der = params.signed_by(&SubjectKey(key), &issuer.issuer()?)?.der().to_vec();
        // The issuer name must be the issuer's subject, byte for byte, or no one can chain it.
        let parsed = Certificate::from_der(&der)?;
        if parsed.tbs_certificate.issuer.to_der()? != issuer.parsed.tbs_certificate.subject.to_der()? {
            return Err(CaError::Encoding(format!("issuer name mismatch for {}", issuer.name)));
        }
        Ok(record(serial, &issuer.name, profile, &parsed, der))
    }

    /// Checks a request as issuing it would, without signing or storing anything: the
    /// profile, the proof of possession, the subject, the key the profile allows; returns the
    /// key and the serialNumber the request names. Callers that must issue several
    /// certificates or none check them all first.
    pub fn check(&self, request: &IssueRequest) -> Result<csr::Verified, CaError> {
        self.checked(request).map(|(_, _, verified)| verified)
    }

    fn checked(&self, request: &IssueRequest) -> Result<(&CertificateProfile, &Member, csr::Verified), CaError> {
        let profile = self.policies.profile(&request.profile).ok_or_else(|| CaError::UnknownProfile(request.profile.clone()))?;
        let issuer_name = match (&profile.kind, &profile.issuer) {
            (ProfileKind::EndEntity, Some(issuer)) => issuer,
            _ => return Err(CaError::NotIssuable(profile.name.clone())),
        };
        let issuer = self.current(issuer_name)?;
        let verified = csr::verified(&request.csr)?;
        request.subject.validate()?;
        // A request that names a citizen must name the one proven: a device cannot get a
        // certificate for someone else by asking for it.
        if let (Some(asked), Subject::NaturalPerson { national_id, country, .. }) = (&verified.serial_number, &request.subject) {
            let proven = format!("PNO{country}-{national_id}");
            if *asked != proven {
                return Err(CaError::SubjectMismatch { asked: asked.clone(), proven });
            }
        }
        if !profile.allowed_keys.contains(&verified.key.spec()) {
            let allowed: Vec<_> = profile.allowed_keys.iter().map(|k| k.name()).collect();
            return Err(CaError::KeyNotAllowed { profile: profile.name.clone(), key: verified.key.spec().to_string(), allowed: allowed.join(", ") });
        }
        Ok((profile, issuer, verified))
    }

    /// Issues a certificate from a request for an identity the caller has proven. The
    /// certificate is stored before it is returned.
    pub async fn issue(&self, request: &IssueRequest) -> Result<Issued, CaError> {
        let (profile, issuer, verified) = self.checked(request)?;
        let key = verified.key;
        // A clash of 126 random bits will not happen, but if it did the store would refuse it.
        for _ in 0..3 {
            let serial = Self::new_serial(&self.rng)?;
            let certificate = self.sign_certificate(issuer, profile, &request.subject, &key, &serial)?;
            match self.store.insert_certificate(&certificate).await {
                Ok(()) => {
                    self.metrics.issued();
                    tracing::info!(target: "audit", event = "certificate.issued", serial = %serial, profile = %profile.name, issuer = %issuer.name, subject = %certificate.subject, "issued certificate");
                    return Ok(Issued { serial, issuer: issuer.name.clone(), der: certificate.der });
                }
                Err(StoreError::DuplicateSerial(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(CaError::Encoding("could not find an unused serial number".into()))
    }

    /// Revokes (or, with `certificateHold`, suspends) a certificate.
    pub async fn revoke(&self, serial: &Serial, reason: RevocationReason) -> Result<store::CertificateRecord, CaError> {
        let record = self.store.revoke(serial, reason, crate::now()).await?;
        self.metrics.revoked(reason == RevocationReason::CertificateHold);
        let event = if reason == RevocationReason::CertificateHold { "certificate.suspended" } else { "certificate.revoked" };
        tracing::info!(target: "audit", event, serial = %serial, %reason, "revoked certificate");
        Ok(record)
    }

    /// Lifts a hold.
    pub async fn release(&self, serial: &Serial) -> Result<store::CertificateRecord, CaError> {
        let record = self.store.release(serial).await?;
        self.metrics.released();
        tracing::info!(target: "audit", event = "certificate.released", serial = %serial, "released certificate from hold");
        Ok(record)
    }

    /// Signs and publishes a new CRL for CA `name` (the root's is an ARL of CA certificates).
    pub async fn publish_crl(&self, name: &str) -> Result<PublishedCrl, CaError> {
        let ca = self.member(name)?;
        if !ca.profile.is_ca() {
            return Err(CaError::UnknownAuthority { name: name.into(), known: self.ca_names().join(", ") });
        }
        let revoked = self.store.revoked(name).await?;
        let number = self.store.next_crl_number(name).await?;
        let is_root = matches!(ca.profile.kind, ProfileKind::Root);
        let this_update = OffsetDateTime::from_unix_timestamp(crate::now()).map_err(|e| CaError::Encoding(e.to_string()))?;
        let next_update = this_update + if is_root { ROOT_CRL_VALIDITY } else { ISSUING_CRL_VALIDITY };
        let mut revoked_certs = Vec::with_capacity(revoked.len());
        for entry in &revoked {
            revoked_certs.push(RevokedCertParams {
                serial_number: SerialNumber::from_slice(entry.serial.as_bytes()),
                revocation_time: OffsetDateTime::from_unix_timestamp(entry.at).map_err(|e| CaError::Encoding(e.to_string()))?,
                // RFC 5280 5.3.1: the reason code unspecified SHOULD be absent.
                reason_code: match entry.reason {
                    RevocationReason::Unspecified => None,
                    r => Some(crl_reason(r)),
                },
                invalidity_date: None,
            });
        }
        let urls = Self::urls(&self.ceremony.base_url, name);
        let params = CertificateRevocationListParams {
            this_update,
            next_update,
            crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
            // Issuing CAs' CRLs cover end-entity certificates only. The root's ARL carries no
            // issuing distribution point: the root itself has none in its certificate, and
            // relying parties that check the whole chain would find the scopes differ.
            issuing_distribution_point: (!is_root).then(|| CrlIssuingDistributionPoint {
                distribution_point: CrlDistributionPoint { uris: vec![urls.crl] },
                scope: Some(CrlScope::UserCertsOnly),
            }),
            revoked_certs,
            key_identifier_method: KeyIdMethod::PreSpecified(ca.ski.clone()),
        };
        let der = params.signed_by(&ca.issuer()?)?.der().to_vec();
        let crl = PublishedCrl { issuer: name.to_owned(), number, this_update: this_update.unix_timestamp(), next_update: next_update.unix_timestamp(), der };
        self.store.put_crl(&crl).await?;
        self.metrics.crl_published();
        tracing::info!(target: "audit", event = "crl.published", ca = name, number, revoked = revoked.len(), "published CRL");
        Ok(crl)
    }

    /// A current CRL for `name`: the stored one while it lists exactly the revocations the
    /// store holds and is less than half-way to its nextUpdate; otherwise a new one. The
    /// root's CRL is only ever re-signed at a ceremony (`hawiya ca crl --ca root`).
    pub async fn current_crl(&self, name: &str) -> Result<Option<PublishedCrl>, CaError> {
        let ca = self.member(name)?;
        let latest = self.store.latest_crl(name).await?;
        if matches!(ca.profile.kind, ProfileKind::Root) {
            return Ok(latest);
        }
        if let Some(crl) = latest {
            let fresh = crate::now() < crl.this_update + (crl.next_update - crl.this_update) / 2;
            if fresh && crl_lists(&crl.der, &self.store.revoked(name).await?) {
                return Ok(Some(crl));
            }
        }
        self.publish_crl(name).await.map(Some)
    }
}

/// The store's record of a certificate just signed.
pub(crate) fn record(serial: &Serial, issuer: &str, profile: &CertificateProfile, parsed: &Certificate, der: Vec<u8>) -> NewCertificate {
    let validity = &parsed.tbs_certificate.validity;
    NewCertificate {
        serial: serial.clone(),
        issuer: issuer.to_owned(),
        profile: profile.name.clone(),
        subject: parsed.tbs_certificate.subject.to_string(),
        not_before: validity.not_before.to_unix_duration().as_secs() as i64,
        not_after: validity.not_after.to_unix_duration().as_secs() as i64,
        der,
        issued_at: crate::now(),
    }
}

/// Whether a CRL lists exactly these revocations (same serials and reasons).
fn crl_lists(crl_der: &[u8], revoked: &[store::RevokedEntry]) -> bool {
    let Ok(crl) = x509_cert::crl::CertificateList::from_der(crl_der) else { return false };
    let listed = crl.tbs_cert_list.revoked_certificates.unwrap_or_default();
    listed.len() == revoked.len()
        && listed.iter().zip(revoked).all(|(l, r)| {
            let reason = l
                .crl_entry_extensions
                .as_ref()
                .and_then(|exts| exts.iter().find(|e| e.extn_id == REASON_CODE))
                .map(|e| e.extn_value.as_bytes().last().copied().unwrap_or(0))
                .unwrap_or(0);
            l.serial_number.as_bytes() == r.serial.as_bytes() && reason == r.reason.code()
        })
}

const REASON_CODE: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("2.5.29.21");

fn crl_reason(r: RevocationReason) -> rcgen::RevocationReason {
    use rcgen::RevocationReason as R;
    match r {
        RevocationReason::Unspecified => R::Unspecified,
        RevocationReason::KeyCompromise => R::KeyCompromise,
        RevocationReason::CaCompromise => R::CaCompromise,
        RevocationReason::AffiliationChanged => R::AffiliationChanged,
        RevocationReason::Superseded => R::Superseded,
        RevocationReason::CessationOfOperation => R::CessationOfOperation,
        RevocationReason::CertificateHold => R::CertificateHold,
        RevocationReason::PrivilegeWithdrawn => R::PrivilegeWithdrawn,
        RevocationReason::AaCompromise => R::AaCompromise,
    }
}

/// Rebuilds an rcgen name from a certificate's subject, keeping each value's string type so
/// the issuer name it writes matches the subject byte for byte.
fn rcgen_name(name: &x509_cert::name::Name) -> Result<DistinguishedName, CaError> {
    let mut dn = DistinguishedName::new();
    for rdn in name.0.iter() {
        for atv in rdn.0.iter() {
            let arcs: Vec<u64> = atv.oid.arcs().map(u64::from).collect();
            let text = std::str::from_utf8(atv.value.value()).map_err(|_| CaError::Encoding("non-UTF-8 name".into()))?.to_owned();
            let value = match atv.value.tag() {
                der::Tag::PrintableString => {
                    DnValue::PrintableString(rcgen::string::PrintableString::try_from(text).map_err(|e| CaError::Encoding(e.to_string()))?)
                }
                der::Tag::Utf8String => DnValue::Utf8String(text),
                other => return Err(CaError::Encoding(format!("name attribute of type {other}"))),
            };
            dn.push(DnType::from_oid(&arcs), value);
        }
    }
    Ok(dn)
}
