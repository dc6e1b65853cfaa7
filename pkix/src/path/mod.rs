//! Certification path building and validation (RFC 5280 §6), the one path validator of the
//! project.
//!
//! [`validate`] starts from an end-entity certificate, finds candidate issuers among the
//! untrusted intermediates and the trust anchors by name and key identifier, verifies each
//! signature under an [`AlgorithmPolicy`], and backtracks until one complete path passes every
//! check: validity at the given time, basicConstraints and pathLenConstraint, keyUsage,
//! extendedKeyUsage, name constraints, certificate policies, unknown critical extensions, and
//! finally revocation through the caller's [`Revocation`]. Loops (the same subject and key
//! twice) are refused, and a depth limit and a work budget bound pathological inputs.
//!
//! Trust anchors are certificates, and are checked as CA certificates (validity, basic
//! constraints, key usage, name constraints, critical extensions): a trust list entry that is
//! not a usable CA certificate is not silently trusted. The validator is strict about RFC
//! 5280's MUSTs for issuers (authority and subject key identifiers, criticality of basic
//! constraints, name constraints and policy constraints, serial numbers, version 3, no
//! duplicate extensions); [`PathOptions::web_pki_server`] adds the CA/Browser Forum rules of
//! TLS server certificates.
//!
//! It never fetches anything: intermediates, anchors and revocation evidence are handed to it.

mod cert;
mod crl;
mod error;
pub(crate) mod names;
mod policy;
mod revocation;
mod signature;

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use der::asn1::ObjectIdentifier;
use x509_cert::Certificate;
use x509_cert::ext::pkix::KeyUsages;

pub use cert::{ANY_EXTENDED_KEY_USAGE, ANY_POLICY};
pub use crl::{Crl, CrlAnswer};
pub use error::{PathError, SubIndication};
pub use names::{PeerName, san_matches};
pub use policy::PolicyOptions;
pub use revocation::{Revocation, RevocationError, RevocationStatus};
pub use signature::{AlgorithmPolicy, SignatureFailure};

use cert::ParsedCert;
use names::ConstrainedName;
use policy::PolicyState;

/// id-kp-serverAuth.
pub const SERVER_AUTH: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.1");
/// id-kp-clientAuth.
pub const CLIENT_AUTH: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.2");

/// How many candidate issuers the builder examines before it gives up.
const MAX_CANDIDATES: usize = 4096;
/// How many signatures the builder verifies before it gives up.
const MAX_SIGNATURES: usize = 512;
/// How many (name, subtree) comparisons name constraints may cost on one path.
const MAX_NAME_CHECKS: usize = 1 << 20;
/// The longest path, self-issued certificates included.
const MAX_PATH_LEN: usize = 32;

/// What a validation requires beyond RFC 5280 itself.
#[derive(Clone, Debug)]
pub struct PathOptions {
    /// The validation time (seconds are what count: the fraction is dropped).
    pub time: SystemTime,
    /// Which keys and signature algorithms are accepted.
    pub algorithms: AlgorithmPolicy,
    /// The purpose the end-entity must be fit for (extendedKeyUsage); an intermediate that
    /// carries extendedKeyUsage must allow it too (or anyExtendedKeyUsage).
    pub required_eku: Option<ObjectIdentifier>,
    /// The keyUsage bits the end-entity must have when it carries keyUsage.
    pub required_key_usage: Vec<KeyUsages>,
    /// The most intermediates (self-issued ones not counted) between end-entity and anchor.
    pub max_intermediates: usize,
    /// Certificate policy inputs.
    pub policy: PolicyOptions,
    /// Apply the CA/Browser Forum Baseline Requirements for TLS server certificates: the
    /// end-entity must carry subjectAltName and extendedKeyUsage (not anyExtendedKeyUsage, not
    /// critical), must not be a CA, its common name must repeat a subjectAltName entry; the
    /// trust anchor must not carry extendedKeyUsage and its authority key identifier, if any,
    /// must be its own key identifier only.
    pub web_pki_server: bool,
    /// With [`PathOptions::web_pki_server`], also require the end-entity's common name to be a
    /// copy of one of its subjectAltName entries (BR §7.1.4.3, an obligation of the CA that
    /// not every verifier enforces).
    pub web_pki_common_name: bool,
    /// Refuse a path when the revocation source has no answer for one of its certificates.
    pub require_revocation_status: bool,
}

impl PathOptions {
    /// Options for `time` with the defaults: the default algorithm policy, no required purpose,
    /// at most 8 intermediates, any policy, no CA/B Forum rules, revocation status optional.
    pub fn at(time: SystemTime) -> PathOptions {
        PathOptions {
            time,
            algorithms: AlgorithmPolicy::default(),
            required_eku: None,
            required_key_usage: Vec::new(),
            max_intermediates: 8,
            policy: PolicyOptions::default(),
            web_pki_server: false,
            web_pki_common_name: true,
            require_revocation_status: false,
        }
    }
}

/// A path that passed validation.
#[derive(Clone, Debug)]
pub struct ValidatedPath {
    /// The certificates from the end-entity (first) to the trust anchor (last).
    pub certificates: Vec<Certificate>,
    /// The valid policy set (RFC 5280 §6.1.6): anyPolicy in it means every policy.
    pub policies: Vec<ObjectIdentifier>,
}

/// A set of trusted certificates, decoded once.
#[derive(Debug, Default)]
pub struct TrustAnchors {
    certs: Vec<ParsedCert>,
}

impl TrustAnchors {
    /// Decodes each DER certificate; one that does not decode is an error, not silently dropped.
    pub fn from_der<T: AsRef<[u8]>>(certificates: &[T]) -> Result<TrustAnchors, PathError> {
        let certs = certificates
            .iter()
            .enumerate()
            .map(|(i, der)| ParsedCert::from_der(der.as_ref()).map_err(|e| PathError::Malformed { what: format!("trust anchor #{i}"), reason: e.to_string() }))
            .collect::<Result<_, _>>()?;
        Ok(TrustAnchors { certs })
    }

    /// The number of anchors.
    pub fn len(&self) -> usize {
        self.certs.len()
    }

    /// Whether there is no anchor.
    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }
}

/// Builds and validates a path from `leaf` (DER) through some of `intermediates` (DER; ones
/// that do not decode are ignored, as untrusted input) to one of `anchors`. Returns the first
/// path that passes every check, or the error of the first complete path that failed (or why
/// none could be built). `revocation`, when given, is asked about every certificate of that
/// path except the anchor.
pub fn validate<T: AsRef<[u8]>>(
    leaf: &[u8],
    intermediates: &[T],
    anchors: &TrustAnchors,
    options: &PathOptions,
    revocation: Option<&dyn Revocation>,
) -> Result<ValidatedPath, PathError> {
    let leaf = ParsedCert::from_der(leaf).map_err(|e| PathError::Malformed { what: "end-entity".into(), reason: e.to_string() })?;
    // The same certificate given twice (a CMS that repeats its chain) is one candidate.
    let mut seen: std::collections::HashSet<&[u8]> = std::collections::HashSet::new();
    let mut pool = vec![leaf];
    pool.extend(intermediates.iter().map(AsRef::as_ref).filter(|der| seen.insert(der)).filter_map(|der| ParsedCert::from_der(der).ok()));
    let mut by_subject: HashMap<names::NameKey, Vec<Node>> = HashMap::new();
    for (i, anchor) in anchors.certs.iter().enumerate() {
        by_subject.entry(names::name_key(&anchor.cert.tbs_certificate.subject)).or_default().push(Node::Anchor(i));
    }
    for (i, cert) in pool.iter().enumerate().skip(1) {
        by_subject.entry(names::name_key(&cert.cert.tbs_certificate.subject)).or_default().push(Node::Pool(i));
    }
    let mut builder = Builder {
        by_subject,
        pool: &pool,
        anchors: &anchors.certs,
        options,
        revocation,
        signatures: HashMap::new(),
        candidates: 0,
        verified: 0,
        path_error: None,
        edge_error: None,
        gave_up: None,
        dead_end: None,
        depth_limited: false,
    };
    let mut path = vec![Node::Pool(0)];
    if let Some(found) = builder.search(&mut path) {
        return Ok(found);
    }
    let subject = pool[0].subject_text();
    if let Some(error) = builder.path_error {
        return Err(error);
    }
    if let Some(reason) = builder.gave_up {
        return Err(PathError::TooComplex { subject, reason });
    }
    if let Some(error) = builder.edge_error {
        return Err(error);
    }
    let reason = match builder.dead_end {
        Some(dead_end) => format!("no certificate of {dead_end} among the intermediates and trust anchors"),
        None if builder.depth_limited => format!("every path found would need more than {} intermediate certificates", options.max_intermediates),
        None => match pool.iter().skip(1).find(|c| names::same_name(&c.cert.tbs_certificate.subject, &c.cert.tbs_certificate.issuer)) {
            Some(root) => format!("it leads to «{}», a self-signed certificate that is not a trust anchor", root.subject_text()),
            None => "every candidate issuer leads back into the path (a loop)".into(),
        },
    };
    Err(PathError::NoPath { subject, reason })
}

/// A certificate's subject as [`PathError`]s name it (RFC 4514, cut after 200 characters), so
/// that a caller can tell which certificate of a path an error is about.
pub fn subject_text(certificate: &Certificate) -> String {
    cert::display_name(&certificate.tbs_certificate.subject)
}

/// The policies a certificate asserts (its certificatePolicies): `None` when it has no such
/// extension, an error when the extension cannot be read.
pub fn certificate_policies(certificate: &Certificate) -> Option<Result<Vec<ObjectIdentifier>, der::Error>> {
    use der::Decode;
    use der::oid::AssociatedOid;
    use x509_cert::ext::pkix::CertificatePolicies;
    let extension = certificate.tbs_certificate.extensions.iter().flatten().find(|e| e.extn_id == CertificatePolicies::OID)?;
    Some(CertificatePolicies::from_der(extension.extn_value.as_bytes()).map(|p| p.0.into_iter().map(|i| i.policy_identifier).collect()))
}

/// Whether the end-entity of `path` is valid for `peer` (see [`san_matches`]).
pub fn check_peer_name(path: &ValidatedPath, peer: &PeerName) -> Result<(), PathError> {
    let leaf = path.certificates.first().ok_or_else(|| PathError::NoPath { subject: "(none)".into(), reason: "empty path".into() })?;
    let parsed = ParsedCert::new(leaf.clone()).map_err(|e| PathError::Malformed { what: "end-entity".into(), reason: e.to_string() })?;
    if san_matches(parsed.sans(), peer) { Ok(()) } else { Err(PathError::NameMismatch { subject: parsed.subject_text(), name: peer.to_string() }) }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Node {
    Pool(usize),
    Anchor(usize),
}

struct Builder<'a> {
    /// Anchors and intermediates by subject name, anchors first.
    by_subject: HashMap<names::NameKey, Vec<Node>>,
    pool: &'a [ParsedCert],
    anchors: &'a [ParsedCert],
    options: &'a PathOptions,
    revocation: Option<&'a dyn Revocation>,
    signatures: HashMap<(Node, Node), Result<(), PathError>>,
    candidates: usize,
    verified: usize,
    path_error: Option<PathError>,
    edge_error: Option<PathError>,
    gave_up: Option<String>,
    dead_end: Option<String>,
    depth_limited: bool,
}

impl<'a> Builder<'a> {
    fn cert(&self, node: Node) -> &'a ParsedCert {
        match node {
            Node::Pool(i) => &self.pool[i],
            Node::Anchor(i) => &self.anchors[i],
        }
    }

    fn search(&mut self, path: &mut Vec<Node>) -> Option<ValidatedPath> {
        let &current = path.last()?;
        let child = self.cert(current);
        let candidates = self.by_subject.get(&names::name_key(&child.cert.tbs_certificate.issuer)).cloned().unwrap_or_default();
        let mut any_issuer = false;
        for candidate in candidates {
            if self.gave_up.is_some() {
                return None;
            }
            self.candidates += 1;
            if self.candidates > MAX_CANDIDATES {
                self.gave_up = Some(format!("more than {MAX_CANDIDATES} candidate issuers examined"));
                return None;
            }
            let issuer = self.cert(candidate);
            if !names::same_name(&child.cert.tbs_certificate.issuer, &issuer.cert.tbs_certificate.subject) {
                continue;
            }
            let aki = child.authority_key_id.as_ref().and_then(|a| a.key_identifier.as_ref());
            if let (Some(aki), Some(ski)) = (aki, &issuer.subject_key_id)
                && aki.as_bytes() != ski.as_slice()
            {
                continue;
            }
            any_issuer = true;
            let repeated = path.iter().any(|n| {
                let c = self.cert(*n);
                c.subject_der == issuer.subject_der && c.spki_der == issuer.spki_der
            });
            if repeated {
                continue;
            }
            if let Err(error) = self.signed_by(current, candidate) {
                if self.edge_error.is_none() {
                    self.edge_error = Some(error);
                }
                continue;
            }
            path.push(candidate);
            if let Node::Anchor(_) = candidate {
                match self.check_path(path) {
                    Ok(found) => return Some(found),
                    Err(error) => {
                        if self.path_error.is_none() {
                            self.path_error = Some(error);
                        }
                    }
                }
            } else {
                let intermediates = path[1..].iter().filter(|n| !self.cert(**n).self_issued).count();
                if intermediates > self.options.max_intermediates || path.len() >= MAX_PATH_LEN {
                    self.depth_limited = true;
                } else if let Some(found) = self.search(path) {
                    return Some(found);
                }
            }
            path.pop();
        }
        if !any_issuer && self.dead_end.is_none() {
            self.dead_end = Some(format!("«{}», the issuer of «{}»,", child.cert.tbs_certificate.issuer, child.subject_text()));
        }
        None
    }

    fn signed_by(&mut self, child: Node, issuer: Node) -> Result<(), PathError> {
        if let Some(known) = self.signatures.get(&(child, issuer)) {
            return known.clone();
        }
        self.verified += 1;
        if self.verified > MAX_SIGNATURES {
            self.gave_up = Some(format!("more than {MAX_SIGNATURES} signatures verified"));
            return Err(PathError::TooComplex { subject: self.pool[0].subject_text(), reason: "signature budget exhausted".into() });
        }
        let c = self.cert(child);
        let i = self.cert(issuer);
        let signature = c.cert.signature.as_bytes().unwrap_or_default();
        let result =
            self.options.algorithms.verify(&i.cert.tbs_certificate.subject_public_key_info, &c.cert.signature_algorithm, &c.tbs_der, signature).map_err(|e| {
                match e {
                    SignatureFailure::Invalid => PathError::BadSignature { subject: c.subject_text(), issuer: i.subject_text() },
                    SignatureFailure::Weak(detail) | SignatureFailure::Unsupported(detail) => {
                        PathError::Crypto { subject: c.subject_text(), detail: format!("signed by «{}»: {detail}", i.subject_text()) }
                    }
                }
            });
        self.signatures.insert((child, issuer), result.clone());
        result
    }

    /// RFC 5280 §6.1 over a complete path (end-entity first, anchor last).
    fn check_path(&self, path: &[Node]) -> Result<ValidatedPath, PathError> {
        let certs: Vec<&ParsedCert> = path.iter().map(|n| self.cert(*n)).collect();
        let options = self.options;
        let n = certs.len();
        let time = options.time.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let subtrees: usize = certs
            .iter()
            .filter_map(|c| c.name_constraints.as_ref())
            .map(|(nc, _)| nc.permitted_subtrees.iter().chain(nc.excluded_subtrees.iter()).map(Vec::len).sum::<usize>())
            .sum();
        let names: usize = certs.iter().map(|c| c.sans().len() + c.subject_attribute_count()).sum();
        if subtrees.saturating_mul(names) > MAX_NAME_CHECKS {
            return Err(PathError::TooComplex {
                subject: certs[0].subject_text(),
                reason: format!("{names} names against {subtrees} name constraints exceed {MAX_NAME_CHECKS} comparisons"),
            });
        }
        let mut constraints = Vec::new();
        let mut max_path_length: Option<u8> = None;
        let mut policy = PolicyState::new(&options.policy, (n - 1) as u32);
        for index in (0..n).rev() {
            let cert = certs[index];
            let is_anchor = index == n - 1;
            let is_leaf = index == 0;
            let broken = |rule: String| PathError::Constraint { subject: cert.subject_text(), rule };
            if let Some(defect) = &cert.defect {
                return Err(broken(defect.clone()));
            }
            if let (Some(defect), false) = (&cert.serial_defect, is_anchor) {
                return Err(broken(defect.clone()));
            }
            let validity = &cert.cert.tbs_certificate.validity;
            let not_before = validity.not_before.to_unix_duration().as_secs();
            let not_after = validity.not_after.to_unix_duration().as_secs();
            if time < not_before {
                return Err(PathError::NotYetValid { subject: cert.subject_text(), not_before, at: time });
            }
            if time > not_after {
                return Err(PathError::Expired { subject: cert.subject_text(), not_after, at: time });
            }
            options
                .algorithms
                .check_key(&cert.cert.tbs_certificate.subject_public_key_info)
                .map_err(|e| PathError::Crypto { subject: cert.subject_text(), detail: format!("public key refused: {}", failure_text(&e)) })?;
            if let Some(oid) = cert.unknown_critical {
                return Err(broken(format!("unrecognised critical extension {oid} (RFC 5280 §4.2)")));
            }
            let key_id = cert.authority_key_id.as_ref().and_then(|a| a.key_identifier.as_ref());
            if key_id.is_none() && !(is_anchor && cert.self_issued) {
                return Err(broken("no authorityKeyIdentifier with a keyIdentifier (RFC 5280 §4.2.1.1)".into()));
            }
            let ku = cert.key_usage.as_ref().map(|k| k.0);
            let bc = cert.basic_constraints.as_ref();
            if ku.is_some_and(|k| k.contains(KeyUsages::KeyCertSign)) && !cert.is_ca() {
                return Err(broken("keyUsage asserts keyCertSign without basicConstraints cA (RFC 5280 §4.2.1.3)".into()));
            }
            if let Some((bc, _)) = bc
                && bc.path_len_constraint.is_some()
                && (!bc.ca || ku.is_some_and(|k| !k.contains(KeyUsages::KeyCertSign)))
            {
                return Err(broken("pathLenConstraint without cA and keyCertSign (RFC 5280 §4.2.1.9)".into()));
            }
            let eku = cert.ext_key_usage.as_ref();
            if !is_leaf {
                match bc {
                    None => return Err(broken("an issuer without basicConstraints (RFC 5280 §4.2.1.9)".into())),
                    Some((bc, _)) if !bc.ca => return Err(broken("an issuer whose basicConstraints do not assert cA (RFC 5280 §6.1.4 k)".into())),
                    Some((_, false)) => return Err(broken("an issuer whose basicConstraints are not critical (RFC 5280 §4.2.1.9)".into())),
                    Some(_) => {}
                }
                if ku.is_some_and(|k| !k.contains(KeyUsages::KeyCertSign)) {
                    return Err(broken("an issuer whose keyUsage lacks keyCertSign (RFC 5280 §6.1.4 n)".into()));
                }
                if cert.subject_key_id.is_none() {
                    return Err(broken("a CA certificate without subjectKeyIdentifier (RFC 5280 §4.2.1.2)".into()));
                }
                if cert.cert.tbs_certificate.subject.0.is_empty() {
                    return Err(broken("a CA certificate with an empty subject (RFC 5280 §4.1.2.6)".into()));
                }
                if let Some((purposes, _)) = eku {
                    if is_anchor && options.web_pki_server {
                        return Err(broken("a root certificate with extendedKeyUsage (CA/B Forum BR §7.1.2.1.2)".into()));
                    }
                    if let Some(required) = options.required_eku
                        && !purposes.contains(&required)
                        && !purposes.contains(&ANY_EXTENDED_KEY_USAGE)
                    {
                        return Err(broken(format!("an issuer whose extendedKeyUsage does not allow {required}")));
                    }
                }
                if is_anchor
                    && cert.self_issued
                    && options.web_pki_server
                    && let Some(aki) = &cert.authority_key_id
                {
                    let own = aki.key_identifier.as_ref().map(|k| k.as_bytes().to_vec());
                    if own.is_none() || own != cert.subject_key_id || aki.authority_cert_issuer.is_some() || aki.authority_cert_serial_number.is_some() {
                        return Err(broken("a root whose authorityKeyIdentifier is not its own keyIdentifier alone (CA/B Forum BR §7.1.2.1.3)".into()));
                    }
                }
                if !is_anchor && !cert.self_issued {
                    match max_path_length {
                        Some(0) => return Err(broken("one CA certificate too many below an issuer's pathLenConstraint (RFC 5280 §6.1.4 l)".into())),
                        Some(m) => max_path_length = Some(m - 1),
                        None => {}
                    }
                }
                if let Some(limit) = bc.and_then(|(bc, _)| bc.path_len_constraint) {
                    max_path_length = Some(max_path_length.map_or(limit, |m| m.min(limit)));
                }
            } else {
                if cert.name_constraints.is_some() {
                    return Err(broken("nameConstraints in an end-entity certificate (RFC 5280 §4.2.1.10)".into()));
                }
                let required: Vec<&KeyUsages> = options.required_key_usage.iter().filter(|bit| ku.is_some_and(|k| !k.contains(**bit))).collect();
                if let Some(missing) = required.first() {
                    return Err(broken(format!("keyUsage lacks {missing:?}")));
                }
                if let (Some((purposes, _)), Some(required)) = (eku, options.required_eku) {
                    let any = purposes.contains(&ANY_EXTENDED_KEY_USAGE) && !options.web_pki_server;
                    if !purposes.contains(&required) && !any {
                        return Err(broken(format!("extendedKeyUsage does not allow {required}")));
                    }
                }
            }
            let constrained = is_leaf || !cert.self_issued;
            if !is_anchor && constrained {
                check_names(cert, &constraints)?;
            }
            if is_leaf && options.web_pki_server {
                self.check_server_leaf(cert)?;
            }
            if let Some((nc, critical)) = &cert.name_constraints {
                if !critical {
                    return Err(broken("nameConstraints not marked critical (RFC 5280 §4.2.1.10)".into()));
                }
                names::check_constraints(nc).map_err(broken)?;
                constraints.push(nc);
            }
            if !is_anchor {
                policy.process(cert, is_leaf).map_err(broken)?;
            }
        }
        let policies = policy.finish(&options.policy).map_err(|rule| PathError::Constraint { subject: certs[0].subject_text(), rule })?;
        self.check_revocation(&certs)?;
        Ok(ValidatedPath { certificates: certs.iter().map(|c| c.cert.clone()).collect(), policies })
    }

    fn check_server_leaf(&self, cert: &ParsedCert) -> Result<(), PathError> {
        let broken = |rule: &str| PathError::Constraint { subject: cert.subject_text(), rule: format!("{rule} (CA/B Forum BR)") };
        match &cert.ext_key_usage {
            None => return Err(broken("a server certificate without extendedKeyUsage")),
            Some((_, true)) => return Err(broken("a server certificate with a critical extendedKeyUsage")),
            Some((purposes, _)) if purposes.contains(&ANY_EXTENDED_KEY_USAGE) => return Err(broken("a server certificate with anyExtendedKeyUsage")),
            Some(_) => {}
        }
        if cert.is_ca() {
            return Err(broken("a server certificate that is a CA"));
        }
        let Some((sans, critical)) = &cert.subject_alt_name else {
            return Err(broken("a server certificate without subjectAltName"));
        };
        let empty_subject = cert.cert.tbs_certificate.subject.0.is_empty();
        if *critical != empty_subject {
            return Err(broken("subjectAltName must be critical exactly when the subject is empty"));
        }
        let common_names = cert.common_names();
        if common_names.len() > 1 {
            return Err(broken("more than one common name"));
        }
        if let Some(cn) = common_names.first()
            && self.options.web_pki_common_name
            && !cn.as_deref().is_some_and(|cn| names::common_name_in_san(cn, sans))
        {
            return Err(broken("the common name is not a copy of a subjectAltName entry"));
        }
        Ok(())
    }

    fn check_revocation(&self, certs: &[&ParsedCert]) -> Result<(), PathError> {
        let Some(source) = self.revocation else {
            return if self.options.require_revocation_status {
                Err(PathError::RevocationUnknown { subject: certs[0].subject_text(), reason: "no revocation source was given".into() })
            } else {
                Ok(())
            };
        };
        for (index, pair) in certs.windows(2).enumerate() {
            let (cert, issuer) = (pair[0], pair[1]);
            let unknown = |reason: String| PathError::RevocationUnknown { subject: cert.subject_text(), reason };
            match source.status(&cert.cert, &issuer.cert, self.options.time) {
                Ok(RevocationStatus::Good) => {}
                Ok(RevocationStatus::Revoked { at, reason }) => {
                    return Err(PathError::Revoked { subject: cert.subject_text(), end_entity: index == 0, revoked_at: at, reason });
                }
                Ok(RevocationStatus::NotFresh { newest, retry_after }) if self.options.require_revocation_status => {
                    return Err(PathError::RevocationNotFresh { subject: cert.subject_text(), newest, retry_after });
                }
                Ok(RevocationStatus::Unknown) if self.options.require_revocation_status => return Err(unknown("no evidence".into())),
                Ok(RevocationStatus::NotFresh { .. } | RevocationStatus::Unknown) => {}
                Err(e) => return Err(unknown(e.0)),
            }
        }
        Ok(())
    }
}

fn failure_text(failure: &SignatureFailure) -> String {
    match failure {
        SignatureFailure::Weak(detail) | SignatureFailure::Unsupported(detail) => detail.clone(),
        SignatureFailure::Invalid => "invalid signature".into(),
    }
}

/// RFC 5280 §6.1.3 b-c: the subject and subjectAltName entries of `cert` against every
/// nameConstraints extension above it.
fn check_names(cert: &ParsedCert, constraints: &[&x509_cert::ext::pkix::NameConstraints]) -> Result<(), PathError> {
    if constraints.is_empty() {
        return Ok(());
    }
    let broken = |rule: String| PathError::Constraint { subject: cert.subject_text(), rule };
    let subject = &cert.cert.tbs_certificate.subject;
    let mut names: Vec<ConstrainedName<'_>> = Vec::new();
    if !subject.0.is_empty() {
        names.push(ConstrainedName::Directory(subject));
    }
    for email in cert.subject_emails() {
        let email = email.ok_or_else(|| broken("an emailAddress attribute that is not a string".into()))?;
        names.push(ConstrainedName::Email(email));
    }
    names.extend(cert.sans().iter().map(ConstrainedName::from_general));
    for nc in constraints {
        for name in &names {
            names::check_name(name, nc).map_err(broken)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use der::DecodePem;

    use super::*;

    const ROOT: &str = include_str!("../../testdata/path/root.pem");
    const ICA: &str = include_str!("../../testdata/path/ica.pem");
    const LEAF: &str = include_str!("../../testdata/path/leaf.pem");
    const LEAF_SHA1: &str = include_str!("../../testdata/path/leaf-sha1.pem");
    const POLICY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.99999.1");
    const DAY: Duration = Duration::from_secs(86_400);

    fn der(pem: &str) -> Vec<u8> {
        der::pem::decode_vec(pem.as_bytes()).map(|(_, d)| d).unwrap_or_else(|e| panic!("test PEM: {e}"))
    }

    fn not_before(pem: &str) -> SystemTime {
        Certificate::from_pem(pem).unwrap_or_else(|e| panic!("{e}")).tbs_certificate.validity.not_before.to_system_time()
    }

    fn not_after(pem: &str) -> SystemTime {
        Certificate::from_pem(pem).unwrap_or_else(|e| panic!("{e}")).tbs_certificate.validity.not_after.to_system_time()
    }

    fn anchors() -> TrustAnchors {
        TrustAnchors::from_der(&[der(ROOT)]).unwrap_or_else(|e| panic!("{e}"))
    }

    fn options(time: SystemTime) -> PathOptions {
        let mut options = PathOptions::at(time);
        options.required_eku = Some(CLIENT_AUTH);
        options.required_key_usage = vec![KeyUsages::DigitalSignature];
        options
    }

    fn common_name(cert: &Certificate) -> String {
        cert.tbs_certificate.subject.to_string()
    }

    /// Revokes the certificates whose subject contains `revoked` from `since` on, and records
    /// every question it was asked.
    #[derive(Debug)]
    struct Source {
        revoked: &'static str,
        since: SystemTime,
        answer_unknown: bool,
        fail: bool,
        asked: Mutex<Vec<(String, String, SystemTime)>>,
    }

    impl Source {
        fn new(revoked: &'static str, since: SystemTime) -> Source {
            Source { revoked, since, answer_unknown: false, fail: false, asked: Mutex::new(Vec::new()) }
        }
    }

    impl Revocation for Source {
        fn status(&self, certificate: &Certificate, issuer: &Certificate, time: SystemTime) -> Result<RevocationStatus, RevocationError> {
            self.asked.lock().unwrap_or_else(|e| e.into_inner()).push((common_name(certificate), common_name(issuer), time));
            if self.fail {
                return Err(RevocationError("the CRL's signature does not verify".into()));
            }
            if self.answer_unknown {
                return Ok(RevocationStatus::Unknown);
            }
            if common_name(certificate).contains(self.revoked) && time >= self.since {
                return Ok(RevocationStatus::Revoked { at: self.since, reason: Some(x509_cert::ext::pkix::CrlReason::KeyCompromise) });
            }
            Ok(RevocationStatus::Good)
        }
    }

    #[test]
    fn rsa_pss_p384_ed25519_chain_validates_with_its_policy() {
        let time = not_before(LEAF) + DAY;
        let path = validate(&der(LEAF), &[der(ICA)], &anchors(), &options(time), None).unwrap_or_else(|e| panic!("{e}"));
        let subjects: Vec<String> = path.certificates.iter().map(common_name).collect();
        assert_eq!(subjects, ["CN=Citizen Test,C=SA", "CN=Test Issuing CA,O=Hawiya Test,C=SA", "CN=Test Root,O=Hawiya Test,C=SA"]);
        assert_eq!(path.policies, vec![POLICY]);
    }

    #[test]
    fn a_revoked_intermediate_fails_the_path_and_the_anchor_is_never_asked() {
        let time = not_before(LEAF) + 10 * DAY;
        let source = Source::new("Test Issuing CA", not_before(LEAF) + DAY);
        let error = validate(&der(LEAF), &[der(ICA)], &anchors(), &options(time), Some(&source)).err();
        let Some(PathError::Revoked { subject, end_entity: false, revoked_at, reason }) = &error else { panic!("expected Revoked, got {error:?}") };
        assert!(subject.contains("Test Issuing CA"), "{subject}");
        assert_eq!(*revoked_at, not_before(LEAF) + DAY);
        assert_eq!(*reason, Some(x509_cert::ext::pkix::CrlReason::KeyCompromise));
        assert_eq!(error.as_ref().map(PathError::sub_indication), Some(SubIndication::RevokedCaNoPoe));
        let asked = source.asked.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert_eq!(asked.len(), 2, "{asked:?}");
        assert!(asked.iter().all(|(subject, _, at)| !subject.contains("Test Root") && *at == time), "{asked:?}");
        assert!(asked[1].1.contains("Test Root"), "the intermediate's issuer is handed over: {asked:?}");
    }

    #[test]
    fn the_validation_time_is_honoured_for_revocation() {
        let revoked_at = not_before(LEAF) + 10 * DAY;
        let source = Source::new("Citizen Test", revoked_at);
        let before = validate(&der(LEAF), &[der(ICA)], &anchors(), &options(revoked_at - DAY), Some(&source));
        assert!(before.is_ok(), "valid the day before its revocation: {before:?}");
        let after = validate(&der(LEAF), &[der(ICA)], &anchors(), &options(revoked_at + DAY), Some(&source));
        assert!(matches!(&after, Err(PathError::Revoked { subject, end_entity: true, .. }) if subject.contains("Citizen Test")), "{after:?}");
        assert_eq!(after.err().map(|e| e.sub_indication()), Some(SubIndication::Revoked));
    }

    #[test]
    fn the_validation_time_is_honoured_for_validity() {
        let late = validate(&der(LEAF), &[der(ICA)], &anchors(), &options(not_after(LEAF) + Duration::from_secs(1)), None);
        assert!(matches!(&late, Err(PathError::Expired { subject, .. }) if subject.contains("Citizen Test")), "{late:?}");
        assert_eq!(late.err().map(|e| e.sub_indication()), Some(SubIndication::OutOfBoundsNoPoe));
        let early = validate(&der(LEAF), &[der(ICA)], &anchors(), &options(not_before(ROOT) - Duration::from_secs(1)), None);
        assert!(matches!(early, Err(PathError::NotYetValid { .. })), "{early:?}");
        let exact = validate(&der(LEAF), &[der(ICA)], &anchors(), &options(not_after(LEAF)), None);
        assert!(exact.is_ok(), "notAfter is inclusive: {exact:?}");
    }

    #[test]
    fn unknown_status_is_refused_only_when_required_and_bad_evidence_always() {
        let time = not_before(LEAF) + DAY;
        let mut source = Source::new("nobody", time);
        source.answer_unknown = true;
        assert!(validate(&der(LEAF), &[der(ICA)], &anchors(), &options(time), Some(&source)).is_ok());
        let mut strict = options(time);
        strict.require_revocation_status = true;
        let error = validate(&der(LEAF), &[der(ICA)], &anchors(), &strict, Some(&source)).err();
        assert!(matches!(&error, Some(PathError::RevocationUnknown { subject, .. }) if subject.contains("Citizen Test")), "{error:?}");
        assert_eq!(error.map(|e| e.sub_indication()), Some(SubIndication::CertificateChainGeneralFailure));
        let missing = validate(&der(LEAF), &[der(ICA)], &anchors(), &strict, None);
        assert!(matches!(missing, Err(PathError::RevocationUnknown { .. })), "{missing:?}");
        source.answer_unknown = false;
        source.fail = true;
        let failed = validate(&der(LEAF), &[der(ICA)], &anchors(), &options(time), Some(&source));
        assert!(matches!(&failed, Err(PathError::RevocationUnknown { reason, .. }) if reason.contains("does not verify")), "{failed:?}");
    }

    #[test]
    fn sha1_is_refused_by_the_algorithm_policy() {
        let time = not_before(LEAF) + DAY;
        let error = validate(&der(LEAF_SHA1), &[der(ICA)], &anchors(), &options(time), None).err();
        assert!(matches!(&error, Some(PathError::Crypto { subject, detail }) if subject.contains("Citizen SHA-1") && detail.contains("SHA-1")), "{error:?}");
        assert_eq!(error.map(|e| e.sub_indication()), Some(SubIndication::CryptoConstraintsFailure));
    }

    #[test]
    fn a_tampered_signature_is_a_signature_failure() {
        let time = not_before(LEAF) + DAY;
        let mut leaf = der(LEAF);
        let last = leaf.len() - 1;
        leaf[last] ^= 1;
        let error = validate(&leaf, &[der(ICA)], &anchors(), &options(time), None).err();
        assert!(matches!(&error, Some(PathError::BadSignature { subject, issuer }) if subject.contains("Citizen") && issuer.contains("Issuing")), "{error:?}");
        assert_eq!(error.map(|e| e.sub_indication()), Some(SubIndication::SigCryptoFailure));
    }

    #[test]
    fn policies_purposes_and_depth_are_enforced() {
        let time = not_before(LEAF) + DAY;
        let mut other_policy = options(time);
        other_policy.policy = PolicyOptions {
            initial_policy_set: vec![ObjectIdentifier::new_unwrap("1.3.6.1.4.1.99999.2")],
            initial_explicit_policy: true,
            ..PolicyOptions::default()
        };
        let error = validate(&der(LEAF), &[der(ICA)], &anchors(), &other_policy, None);
        assert!(matches!(&error, Err(PathError::Constraint { rule, .. }) if rule.contains("policy")), "{error:?}");
        other_policy.policy.initial_policy_set = vec![POLICY];
        let path = validate(&der(LEAF), &[der(ICA)], &anchors(), &other_policy, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(path.policies, vec![POLICY]);

        let mut server = options(time);
        server.required_eku = Some(SERVER_AUTH);
        let error = validate(&der(LEAF), &[der(ICA)], &anchors(), &server, None);
        assert!(matches!(&error, Err(PathError::Constraint { rule, .. }) if rule.contains("extendedKeyUsage")), "{error:?}");

        let mut shallow = options(time);
        shallow.max_intermediates = 0;
        let error = validate(&der(LEAF), &[der(ICA)], &anchors(), &shallow, None);
        assert!(matches!(error, Err(PathError::NoPath { .. })), "{error:?}");

        let none: [Vec<u8>; 0] = [];
        let error = validate(&der(LEAF), &none, &anchors(), &options(time), None).err();
        assert!(matches!(&error, Some(PathError::NoPath { reason, .. }) if reason.contains("Test Issuing CA")), "{error:?}");
        assert_eq!(error.map(|e| e.sub_indication()), Some(SubIndication::NoCertificateChainFound));
    }

    /// The issuing CA's CRL (made by `openssl ca`) as a revocation source.
    #[derive(Debug)]
    struct Crls(Vec<Crl>);

    impl Revocation for Crls {
        fn status(&self, certificate: &Certificate, issuer: &Certificate, time: SystemTime) -> Result<RevocationStatus, RevocationError> {
            Crl::status_among(&self.0, certificate, issuer, time, &AlgorithmPolicy::default())
        }
    }

    #[test]
    fn an_openssl_crl_revokes_the_leaf_until_it_is_stale() {
        let crl_der = der(include_str!("../../testdata/path/ica-crl.pem"));
        let crls = Crls(vec![Crl::from_der(&crl_der).unwrap_or_else(|e| panic!("{e}"))]);
        let time = not_before(LEAF) + DAY;
        let error = validate(&der(LEAF), &[der(ICA)], &anchors(), &options(time), Some(&crls));
        assert!(
            matches!(&error, Err(PathError::Revoked { subject, reason: Some(x509_cert::ext::pkix::CrlReason::KeyCompromise), .. }) if subject.contains("Citizen Test")),
            "{error:?}"
        );
        // The issuing CA itself has no CRL from the root here: unknown, and not required.
        let stale = validate(&der(LEAF), &[der(ICA)], &anchors(), &options(not_before(LEAF) + 31 * DAY), Some(&crls));
        assert!(matches!(&stale, Err(PathError::RevocationUnknown { reason, .. }) if reason.contains("nextUpdate")), "{stale:?}");
        let mut tampered = crl_der.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        let crls = Crls(vec![Crl::from_der(&tampered).unwrap_or_else(|e| panic!("{e}"))]);
        let forged = validate(&der(LEAF), &[der(ICA)], &anchors(), &options(time), Some(&crls));
        assert!(matches!(&forged, Err(PathError::RevocationUnknown { reason, .. }) if reason.contains("signature")), "{forged:?}");
    }

    #[test]
    fn ten_thousand_intermediates_are_handled_in_bounded_time() {
        let time = not_before(LEAF) + DAY;
        let many: Vec<Vec<u8>> = (0..10_000).map(|i| if i % 2 == 0 { der(ICA) } else { der(LEAF_SHA1) }).collect();
        let started = std::time::Instant::now();
        let path = validate(&der(LEAF), &many, &anchors(), &options(time), None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(path.certificates.len(), 3);
        assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    }

    #[test]
    fn an_error_tells_which_certificate_of_the_path_it_is_about() {
        let leaf = Certificate::from_pem(LEAF).unwrap_or_else(|e| panic!("{e}"));
        let ica = Certificate::from_pem(ICA).unwrap_or_else(|e| panic!("{e}"));
        let late = validate(&der(LEAF), &[der(ICA)], &anchors(), &options(not_after(LEAF) + Duration::from_secs(1)), None).err();
        assert_eq!(late.as_ref().and_then(PathError::subject), Some(subject_text(&leaf).as_str()), "{late:?}");
        let time = not_before(LEAF) + 10 * DAY;
        let source = Source::new("Test Issuing CA", not_before(LEAF) + DAY);
        let revoked = validate(&der(LEAF), &[der(ICA)], &anchors(), &options(time), Some(&source)).err();
        assert_eq!(revoked.as_ref().and_then(PathError::subject), Some(subject_text(&ica).as_str()), "{revoked:?}");
        assert_ne!(subject_text(&leaf), subject_text(&ica));
        assert_eq!(PathError::Malformed { what: "end-entity".into(), reason: "truncated".into() }.subject(), None);
    }

    #[test]
    fn error_messages_name_the_certificate_and_the_rule() {
        let error = PathError::Constraint { subject: "CN=Test Issuing CA".into(), rule: "an issuer whose keyUsage lacks keyCertSign".into() };
        assert_eq!(error.to_string(), "certificate «CN=Test Issuing CA»: an issuer whose keyUsage lacks keyCertSign");
    }
}
