//! A certificate decoded once, with the extensions the validator processes, and the defects
//! that make it unusable wherever it stands in a path.

use der::asn1::ObjectIdentifier;
use der::{Decode, Encode};
use x509_cert::Certificate;
use x509_cert::certificate::Version;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::constraints::name::GeneralSubtrees;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints, CertificatePolicies, CrlDistributionPoints, ExtendedKeyUsage, KeyUsage,
    NameConstraints, PolicyConstraints, PolicyMappings, SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::name::Name;

use super::names;
use super::signature::algorithm_der;

pub(crate) const BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
pub(crate) const KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.15");
pub(crate) const EXT_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
pub(crate) const SUBJECT_ALT_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");
pub(crate) const ISSUER_ALT_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.18");
pub(crate) const NAME_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.30");
pub(crate) const CERTIFICATE_POLICIES: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.32");
pub(crate) const POLICY_MAPPINGS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.33");
pub(crate) const POLICY_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.36");
pub(crate) const INHIBIT_ANY_POLICY: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.54");
pub(crate) const AUTHORITY_KEY_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.35");
pub(crate) const SUBJECT_KEY_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.14");
pub(crate) const AUTHORITY_INFO_ACCESS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.1.1");
pub(crate) const CRL_DISTRIBUTION_POINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.31");
/// anyPolicy (RFC 5280 §4.2.1.4).
pub const ANY_POLICY: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.32.0");
/// anyExtendedKeyUsage (RFC 5280 §4.2.1.12).
pub const ANY_EXTENDED_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37.0");
const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
const EMAIL_ADDRESS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.1");

/// A decoded certificate and what the validator needs from it.
#[derive(Debug)]
pub(crate) struct ParsedCert {
    pub cert: Certificate,
    pub tbs_der: Vec<u8>,
    pub subject_der: Vec<u8>,
    pub spki_der: Vec<u8>,
    pub self_issued: bool,
    pub basic_constraints: Option<(BasicConstraints, bool)>,
    pub key_usage: Option<KeyUsage>,
    pub ext_key_usage: Option<(Vec<ObjectIdentifier>, bool)>,
    pub subject_alt_name: Option<(Vec<GeneralName>, bool)>,
    pub name_constraints: Option<(NameConstraints, bool)>,
    pub authority_key_id: Option<AuthorityKeyIdentifier>,
    pub subject_key_id: Option<Vec<u8>>,
    pub policies: Option<Vec<ObjectIdentifier>>,
    pub policy_mappings: Option<Vec<(ObjectIdentifier, ObjectIdentifier)>>,
    pub policy_constraints: Option<PolicyConstraints>,
    pub inhibit_any_policy: Option<u32>,
    /// The first critical extension this validator does not process.
    pub unknown_critical: Option<ObjectIdentifier>,
    /// The first defect that makes the certificate unusable in any position.
    pub defect: Option<String>,
    /// A serial number RFC 5280 forbids (zero, negative, too long): refused below the trust
    /// anchor only, since some long-trusted roots have one.
    pub serial_defect: Option<String>,
}

impl ParsedCert {
    /// The subject for messages ([`display_name`]): made only when a message needs it, since
    /// naming the attributes of a name is a walk through the OID table per attribute.
    pub fn subject_text(&self) -> String {
        display_name(&self.cert.tbs_certificate.subject)
    }

    /// Decodes `der` and records its extensions and defects.
    pub fn from_der(der: &[u8]) -> Result<ParsedCert, der::Error> {
        let cert = Certificate::from_der(der)?;
        ParsedCert::new(cert)
    }

    /// Records the extensions and defects of `cert`.
    pub fn new(cert: Certificate) -> Result<ParsedCert, der::Error> {
        let tbs = &cert.tbs_certificate;
        let tbs_der = tbs.to_der()?;
        let subject_der = tbs.subject.to_der()?;
        let spki_der = tbs.subject_public_key_info.to_der()?;
        let mut parsed = ParsedCert {
            self_issued: names::same_name(&tbs.subject, &tbs.issuer),
            tbs_der,
            subject_der,
            spki_der,
            basic_constraints: None,
            key_usage: None,
            ext_key_usage: None,
            subject_alt_name: None,
            name_constraints: None,
            authority_key_id: None,
            subject_key_id: None,
            policies: None,
            policy_mappings: None,
            policy_constraints: None,
            inhibit_any_policy: None,
            unknown_critical: None,
            defect: None,
            serial_defect: None,
            cert,
        };
        let extensions = parsed.cert.tbs_certificate.extensions.take();
        parsed.read_extensions(extensions.as_deref().unwrap_or_default());
        parsed.cert.tbs_certificate.extensions = extensions;
        let (defects, serial_defect) = parsed.sanity_defects();
        for defect in defects {
            parsed.defect(defect);
        }
        parsed.serial_defect = serial_defect;
        Ok(parsed)
    }

    fn defect(&mut self, why: impl Into<String>) {
        if self.defect.is_none() {
            self.defect = Some(why.into());
        }
    }

    fn read_extensions(&mut self, extensions: &[Extension]) {
        let mut seen: Vec<ObjectIdentifier> = Vec::new();
        for ext in extensions {
            if seen.contains(&ext.extn_id) {
                self.defect(format!("extension {} appears more than once (RFC 5280 §4.2)", ext.extn_id));
            }
            seen.push(ext.extn_id);
            let value = ext.extn_value.as_bytes();
            let oid = ext.extn_id;
            let malformed = |name: &str| format!("malformed {name} extension");
            if oid == BASIC_CONSTRAINTS {
                match BasicConstraints::from_der(value) {
                    Ok(bc) => self.basic_constraints = Some((bc, ext.critical)),
                    Err(_) => self.defect(malformed("basicConstraints")),
                }
            } else if oid == KEY_USAGE {
                match KeyUsage::from_der(value) {
                    Ok(ku) if ku.0.bits() == 0 => self.defect("keyUsage extension with no bit set (RFC 5280 §4.2.1.3)"),
                    Ok(ku) => self.key_usage = Some(ku),
                    Err(_) => self.defect(malformed("keyUsage")),
                }
            } else if oid == EXT_KEY_USAGE {
                match ExtendedKeyUsage::from_der(value) {
                    Ok(eku) if eku.0.is_empty() => self.defect("extendedKeyUsage extension with no purpose (RFC 5280 §4.2.1.12)"),
                    Ok(eku) => self.ext_key_usage = Some((eku.0, ext.critical)),
                    Err(_) => self.defect(malformed("extendedKeyUsage")),
                }
            } else if oid == SUBJECT_ALT_NAME {
                match SubjectAltName::from_der(value) {
                    Ok(san) if san.0.is_empty() => self.defect("subjectAltName extension with no name (RFC 5280 §4.2.1.6)"),
                    Ok(san) => self.subject_alt_name = Some((san.0, ext.critical)),
                    Err(_) => self.defect(malformed("subjectAltName")),
                }
            } else if oid == NAME_CONSTRAINTS {
                match NameConstraints::from_der(value) {
                    Ok(nc) => {
                        let empty = |s: &Option<GeneralSubtrees>| s.as_ref().is_none_or(|s| s.is_empty());
                        if empty(&nc.permitted_subtrees) && empty(&nc.excluded_subtrees) {
                            self.defect("nameConstraints extension with neither permitted nor excluded subtrees (RFC 5280 §4.2.1.10)");
                        } else if nc.permitted_subtrees.as_ref().is_some_and(|s| s.is_empty()) || nc.excluded_subtrees.as_ref().is_some_and(|s| s.is_empty()) {
                            self.defect("nameConstraints extension with an empty list of subtrees (RFC 5280 §4.2.1.10)");
                        }
                        self.name_constraints = Some((nc, ext.critical));
                    }
                    Err(_) => self.defect(malformed("nameConstraints")),
                }
            } else if oid == AUTHORITY_KEY_ID {
                if ext.critical {
                    self.defect("authorityKeyIdentifier extension marked critical (RFC 5280 §4.2.1.1)");
                }
                match AuthorityKeyIdentifier::from_der(value) {
                    Ok(aki) => self.authority_key_id = Some(aki),
                    Err(_) => self.defect(malformed("authorityKeyIdentifier")),
                }
            } else if oid == SUBJECT_KEY_ID {
                if ext.critical {
                    self.defect("subjectKeyIdentifier extension marked critical (RFC 5280 §4.2.1.2)");
                }
                match SubjectKeyIdentifier::from_der(value) {
                    Ok(ski) => self.subject_key_id = Some(ski.0.as_bytes().to_vec()),
                    Err(_) => self.defect(malformed("subjectKeyIdentifier")),
                }
            } else if oid == CERTIFICATE_POLICIES {
                match CertificatePolicies::from_der(value) {
                    Ok(cp) if cp.0.is_empty() => self.defect("certificatePolicies extension with no policy"),
                    Ok(cp) => {
                        let oids: Vec<ObjectIdentifier> = cp.0.iter().map(|p| p.policy_identifier).collect();
                        if oids.iter().enumerate().any(|(i, o)| oids[..i].contains(o)) {
                            self.defect("certificatePolicies lists a policy twice (RFC 5280 §4.2.1.4)");
                        }
                        self.policies = Some(oids);
                    }
                    Err(_) => self.defect(malformed("certificatePolicies")),
                }
            } else if oid == POLICY_MAPPINGS {
                match PolicyMappings::from_der(value) {
                    Ok(pm) if pm.0.is_empty() => self.defect("policyMappings extension with no mapping"),
                    Ok(pm) => self.policy_mappings = Some(pm.0.iter().map(|m| (m.issuer_domain_policy, m.subject_domain_policy)).collect()),
                    Err(_) => self.defect(malformed("policyMappings")),
                }
            } else if oid == POLICY_CONSTRAINTS {
                if !ext.critical {
                    self.defect("policyConstraints extension not marked critical (RFC 5280 §4.2.1.11)");
                }
                match PolicyConstraints::from_der(value) {
                    Ok(pc) if pc.require_explicit_policy.is_none() && pc.inhibit_policy_mapping.is_none() => {
                        self.defect("policyConstraints extension with neither field (RFC 5280 §4.2.1.11)")
                    }
                    Ok(pc) => self.policy_constraints = Some(pc),
                    Err(_) => self.defect(malformed("policyConstraints")),
                }
            } else if oid == INHIBIT_ANY_POLICY {
                if !ext.critical {
                    self.defect("inhibitAnyPolicy extension not marked critical (RFC 5280 §4.2.1.14)");
                }
                match u32::from_der(value) {
                    Ok(skip) => self.inhibit_any_policy = Some(skip),
                    Err(_) => self.defect(malformed("inhibitAnyPolicy")),
                }
            } else if oid == AUTHORITY_INFO_ACCESS {
                if ext.critical {
                    self.defect("authorityInfoAccess extension marked critical (RFC 5280 §4.2.2.1)");
                }
                match AuthorityInfoAccessSyntax::from_der(value) {
                    Ok(aia) if aia.0.is_empty() => self.defect("authorityInfoAccess extension with no access description"),
                    Ok(_) => {}
                    Err(_) => self.defect(malformed("authorityInfoAccess")),
                }
            } else if oid == CRL_DISTRIBUTION_POINTS {
                match CrlDistributionPoints::from_der(value) {
                    Ok(dp) if dp.0.is_empty() => self.defect("cRLDistributionPoints extension with no distribution point"),
                    Ok(_) => {}
                    Err(_) => self.defect(malformed("cRLDistributionPoints")),
                }
            } else if oid == ISSUER_ALT_NAME {
                if SubjectAltName::from_der(value).is_err() {
                    self.defect(malformed("issuerAltName"));
                }
            } else if ext.critical && self.unknown_critical.is_none() {
                self.unknown_critical = Some(oid);
            }
        }
    }

    /// The defects of the certificate's fields, and a serial number RFC 5280 forbids.
    fn sanity_defects(&self) -> (Vec<String>, Option<String>) {
        let tbs = &self.cert.tbs_certificate;
        let mut defects: Vec<String> = Vec::new();
        if algorithm_der(&tbs.signature) != algorithm_der(&self.cert.signature_algorithm) {
            defects.push("the signature algorithm inside the certificate differs from the one outside (RFC 5280 §4.1.1.2)".into());
        }
        let serial = tbs.serial_number.as_bytes();
        let serial_defect = if serial.first().is_some_and(|b| b & 0x80 != 0) {
            Some("negative serial number (RFC 5280 §4.1.2.2)".into())
        } else if serial.iter().all(|b| *b == 0) {
            Some("serial number zero (RFC 5280 §4.1.2.2)".into())
        } else if serial.len() > 20 && !(serial.len() == 21 && serial[0] == 0) {
            Some("serial number longer than 20 octets (RFC 5280 §4.1.2.2)".into())
        } else {
            None
        };
        if tbs.version != Version::V3 {
            defects.push("not an X.509 version 3 certificate".into());
        }
        if tbs.issuer.0.is_empty() {
            defects.push("empty issuer name (RFC 5280 §4.1.2.4)".into());
        }
        if tbs.issuer_unique_id.is_some() || tbs.subject_unique_id.is_some() {
            defects.push("unique identifiers are not allowed (RFC 5280 §4.1.2.8)".into());
        }
        if tbs.subject.0.is_empty() {
            match &self.subject_alt_name {
                None => defects.push("empty subject and no subjectAltName (RFC 5280 §4.1.2.6)".into()),
                Some((_, false)) => defects.push("empty subject with a non-critical subjectAltName (RFC 5280 §4.2.1.6)".into()),
                Some(_) => {}
            }
        }
        if let Some(why) = self.sans().iter().find_map(names::general_name_defect) {
            defects.push(format!("subjectAltName: {why}"));
        }
        (defects, serial_defect)
    }

    /// The common names of the subject, as text (None for a value that is not a string).
    pub fn common_names(&self) -> Vec<Option<String>> {
        attribute_values(&self.cert.tbs_certificate.subject, COMMON_NAME)
    }

    /// The emailAddress attributes of the subject (RFC 5280 §4.2.1.10 checks them as rfc822Name).
    pub fn subject_emails(&self) -> Vec<Option<String>> {
        attribute_values(&self.cert.tbs_certificate.subject, EMAIL_ADDRESS)
    }

    /// The number of attributes in the subject name.
    pub fn subject_attribute_count(&self) -> usize {
        self.cert.tbs_certificate.subject.0.iter().map(|rdn| rdn.0.len()).sum()
    }

    /// Whether the certificate asserts cA in its basicConstraints.
    pub fn is_ca(&self) -> bool {
        self.basic_constraints.as_ref().is_some_and(|(bc, _)| bc.ca)
    }

    /// The subjectAltName entries (empty when absent).
    pub fn sans(&self) -> &[GeneralName] {
        self.subject_alt_name.as_ref().map(|(n, _)| n.as_slice()).unwrap_or(&[])
    }
}

fn attribute_values(name: &Name, oid: ObjectIdentifier) -> Vec<Option<String>> {
    name.0.iter().flat_map(|rdn| rdn.0.iter()).filter(|atv| atv.oid == oid).map(|atv| names::attribute_string(&atv.value)).collect()
}

/// A subject name for messages: the RFC 4514 string (cut after 200 characters), or a
/// placeholder for an empty name.
pub(crate) fn display_name(name: &Name) -> String {
    if name.0.is_empty() {
        return "(empty subject)".to_string();
    }
    let text = name.to_string();
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}
