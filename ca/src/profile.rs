//! Turns a certificate profile from `policies/` plus a subject into rcgen parameters.

use aws_lc_rs::digest;
use der::asn1::{Any, Ia5String, ObjectIdentifier, OctetString, PrintableStringRef};
use der::{Encode, Sequence};
use hsm_shim::{KeySpec, PublicKey};
use policies::{CertificateProfile, KeyUsage, ProfileKind, QcType, SubjectKind};
use rcgen::{
    BasicConstraints, CertificateParams, CrlDistributionPoint, CustomExtension, DistinguishedName, DnType, DnValue, IsCa, KeyIdMethod, KeyUsagePurpose,
    SerialNumber,
};
use time::OffsetDateTime;
use x509_cert::ext::pkix::certpolicy::PolicyInformation;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{AccessDescription, AuthorityInfoAccessSyntax, CertificatePolicies};

use crate::CaError;
use crate::authority::Subject;

const OID_GIVEN_NAME: &[u64] = &[2, 5, 4, 42];
const OID_SURNAME: &[u64] = &[2, 5, 4, 4];
const OID_SERIAL_NUMBER: &[u64] = &[2, 5, 4, 5];
const OID_AIA: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 1, 1];
const OID_QC_STATEMENTS: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 1, 3];
const OID_CERTIFICATE_POLICIES: &[u64] = &[2, 5, 29, 32];
const OID_EXT_KEY_USAGE: &[u64] = &[2, 5, 29, 37];
const OID_SUBJECT_KEY_ID: &[u64] = &[2, 5, 29, 14];
const OID_OCSP_NOCHECK: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 1, 5];

const AD_OCSP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");
const AD_CA_ISSUERS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.2");
const QC_COMPLIANCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("0.4.0.1862.1.1");
const QC_SSCD: ObjectIdentifier = ObjectIdentifier::new_unwrap("0.4.0.1862.1.4");
const QC_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("0.4.0.1862.1.6");
const QC_CC_LEGISLATION: ObjectIdentifier = ObjectIdentifier::new_unwrap("0.4.0.1862.1.7");

/// The URLs a certificate points at: its issuer's certificate, CRL and OCSP responder.
pub(crate) struct IssuerUrls {
    pub ca_issuers: String,
    pub crl: String,
    pub ocsp: String,
}

/// Everything that goes into one certificate besides the issuer.
pub(crate) struct Contents<'a> {
    pub profile: &'a CertificateProfile,
    pub subject: &'a Subject,
    pub key: &'a PublicKey,
    pub serial: &'a [u8],
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub urls: Option<&'a IssuerUrls>,
    /// The country whose law makes qualified certificates qualified (QcCClegislation).
    pub legislation: &'a str,
}

/// The subject key, as rcgen wants to see it.
pub(crate) struct SubjectKey<'a>(pub &'a PublicKey);

impl rcgen::PublicKeyData for SubjectKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.0.subject_public_key()
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        // Only the SubjectPublicKeyInfo algorithm identifier is taken from this.
        match self.0.spec() {
            KeySpec::EcP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeySpec::EcP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            KeySpec::Ed25519 => &rcgen::PKCS_ED25519,
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => &rcgen::PKCS_RSA_SHA256,
        }
    }
}

/// RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits.
pub(crate) fn key_identifier(key: &PublicKey) -> Vec<u8> {
    digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, key.subject_public_key()).as_ref().to_vec()
}

/// The subject distinguished name.
pub(crate) fn distinguished_name(subject: &Subject) -> Result<DistinguishedName, CaError> {
    let printable = |field: &str, value: &str| {
        rcgen::string::PrintableString::try_from(value)
            .map(DnValue::PrintableString)
            .map_err(|_| CaError::InvalidSubject(format!("{field} {value:?} is not a PrintableString")))
    };
    let mut dn = DistinguishedName::new();
    match subject {
        Subject::NaturalPerson { given_name, surname, national_id, country } => {
            dn.push(DnType::CountryName, printable("country", country)?);
            dn.push(DnType::CustomDnType(OID_GIVEN_NAME.to_vec()), DnValue::Utf8String(given_name.clone()));
            dn.push(DnType::CustomDnType(OID_SURNAME.to_vec()), DnValue::Utf8String(surname.clone()));
            // ETSI EN 319 412-1 5.1.3: semantics identifier PNO (national personal number).
            dn.push(DnType::CustomDnType(OID_SERIAL_NUMBER.to_vec()), printable("national id", &format!("PNO{country}-{national_id}"))?);
            dn.push(DnType::CommonName, DnValue::Utf8String(format!("{given_name} {surname}")));
        }
        Subject::Organization { country, organization, common_name } => {
            dn.push(DnType::CountryName, printable("country", country)?);
            dn.push(DnType::OrganizationName, DnValue::Utf8String(organization.clone()));
            dn.push(DnType::CommonName, DnValue::Utf8String(common_name.clone()));
        }
    }
    Ok(dn)
}

fn extension(oid: &[u64], critical: bool, content: Vec<u8>) -> CustomExtension {
    let mut ext = CustomExtension::from_oid_content(oid, content);
    ext.set_criticality(critical);
    ext
}

fn uri(url: &str) -> Result<GeneralName, CaError> {
    Ok(GeneralName::UniformResourceIdentifier(Ia5String::new(url).map_err(|e| CaError::Config(format!("URL {url:?}: {e}")))?))
}

#[derive(Sequence)]
struct QcStatement {
    statement_id: ObjectIdentifier,
    statement_info: Option<Any>,
}

fn qc_statements(qc: &policies::QcStatements, legislation: &str) -> Result<Vec<u8>, CaError> {
    let mut statements = Vec::new();
    if qc.compliance {
        statements.push(QcStatement { statement_id: QC_COMPLIANCE, statement_info: None });
    }
    if qc.sscd {
        statements.push(QcStatement { statement_id: QC_SSCD, statement_info: None });
    }
    if let Some(t) = qc.qc_type {
        let oid = match t {
            QcType::Esign => ObjectIdentifier::new_unwrap("0.4.0.1862.1.6.1"),
            QcType::Eseal => ObjectIdentifier::new_unwrap("0.4.0.1862.1.6.2"),
            QcType::Web => ObjectIdentifier::new_unwrap("0.4.0.1862.1.6.3"),
        };
        statements.push(QcStatement { statement_id: QC_TYPE, statement_info: Some(Any::encode_from(&vec![oid])?) });
    }
    if qc.legislation {
        let country = PrintableStringRef::new(legislation)?;
        statements.push(QcStatement { statement_id: QC_CC_LEGISLATION, statement_info: Some(Any::encode_from(&vec![country])?) });
    }
    Ok(statements.to_der()?)
}

/// Builds the parameters of a certificate following `contents.profile`.
pub(crate) fn certificate_params(c: &Contents<'_>) -> Result<CertificateParams, CaError> {
    let p = c.profile;
    if !p.allowed_keys.contains(&c.key.spec()) {
        let allowed: Vec<_> = p.allowed_keys.iter().map(|k| k.name()).collect();
        return Err(CaError::KeyNotAllowed { profile: p.name.clone(), key: c.key.spec().to_string(), allowed: allowed.join(", ") });
    }
    match (p.subject, c.subject) {
        (SubjectKind::NaturalPerson, Subject::NaturalPerson { .. }) | (SubjectKind::Organization, Subject::Organization { .. }) => {}
        (SubjectKind::NaturalPerson, _) => return Err(CaError::InvalidSubject(format!("profile {:?} is for a natural person", p.name))),
        (SubjectKind::Organization, _) => return Err(CaError::InvalidSubject(format!("profile {:?} is for an organization", p.name))),
    }
    let mut params = CertificateParams::default();
    params.serial_number = Some(SerialNumber::from_slice(c.serial));
    params.not_before = c.not_before;
    params.not_after = c.not_after;
    params.distinguished_name = distinguished_name(c.subject)?;
    let ski = key_identifier(c.key);
    params.key_identifier_method = KeyIdMethod::PreSpecified(ski.clone());
    params.is_ca = match p.kind {
        ProfileKind::Root => IsCa::Ca(BasicConstraints::Unconstrained),
        ProfileKind::Intermediate { path_length: Some(n) } => IsCa::Ca(BasicConstraints::Constrained(n)),
        ProfileKind::Intermediate { path_length: None } => IsCa::Ca(BasicConstraints::Unconstrained),
        ProfileKind::EndEntity => IsCa::NoCa,
    };
    params.use_authority_key_identifier_extension = !matches!(p.kind, ProfileKind::Root);
    params.key_usages = p
        .key_usage
        .iter()
        .map(|u| match u {
            KeyUsage::DigitalSignature => KeyUsagePurpose::DigitalSignature,
            KeyUsage::NonRepudiation => KeyUsagePurpose::ContentCommitment,
            KeyUsage::KeyEncipherment => KeyUsagePurpose::KeyEncipherment,
            KeyUsage::DataEncipherment => KeyUsagePurpose::DataEncipherment,
            KeyUsage::KeyAgreement => KeyUsagePurpose::KeyAgreement,
            KeyUsage::KeyCertSign => KeyUsagePurpose::KeyCertSign,
            KeyUsage::CrlSign => KeyUsagePurpose::CrlSign,
        })
        .collect();
    let ext = &mut params.custom_extensions;
    if !p.is_ca() {
        // rcgen writes the SKI of CA certificates itself.
        ext.push(extension(OID_SUBJECT_KEY_ID, false, OctetString::new(ski)?.to_der()?));
    }
    if !p.extended_key_usage.is_empty() {
        let ekus: Vec<ObjectIdentifier> = p.extended_key_usage.iter().map(|e| e.oid()).collect();
        ext.push(extension(OID_EXT_KEY_USAGE, p.extended_key_usage_critical, ekus.to_der()?));
    }
    if let Some(urls) = c.urls {
        if p.crl_distribution_point {
            params.crl_distribution_points = vec![CrlDistributionPoint { uris: vec![urls.crl.clone()] }];
        }
        if p.authority_info_access {
            let mut access = Vec::new();
            // The OCSP responder answers for end-entity certificates; CA certificates are
            // covered by their issuer's CRL (the root is offline).
            if !p.is_ca() {
                access.push(AccessDescription { access_method: AD_OCSP, access_location: uri(&urls.ocsp)? });
            }
            access.push(AccessDescription { access_method: AD_CA_ISSUERS, access_location: uri(&urls.ca_issuers)? });
            params.custom_extensions.push(extension(OID_AIA, false, AuthorityInfoAccessSyntax(access).to_der()?));
        }
    }
    if !p.certificate_policies.is_empty() {
        let policies =
            CertificatePolicies(p.certificate_policies.iter().map(|oid| PolicyInformation { policy_identifier: *oid, policy_qualifiers: None }).collect());
        params.custom_extensions.push(extension(OID_CERTIFICATE_POLICIES, false, policies.to_der()?));
    }
    if let Some(qc) = &p.qc_statements {
        params.custom_extensions.push(extension(OID_QC_STATEMENTS, false, qc_statements(qc, c.legislation)?));
    }
    if p.ocsp_no_check {
        params.custom_extensions.push(extension(OID_OCSP_NOCHECK, false, der::asn1::Null.to_der()?));
    }
    Ok(params)
}
