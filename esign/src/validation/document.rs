//! Validating a whole document: recognising what it is (a PDF, a CAdES signature, an RFC
//! 3161 token), validating every signature and timestamp in it, and the report.

use std::time::SystemTime;

use der::Decode;
use pkix::cms::{SignedData, oid};
use pkix::etsi::SubIndication;
use pkix::evidence::Evidence;
use pkix::path::AlgorithmPolicy;
use policies::{SignatureFormat, ValidationPolicy};

use super::cms::{self as core, Content, Inputs, Trust, rfc3339};
use super::report::{Bilingual, BlockResult, Conclusion, Coverage, DocumentInfo, Finding, PolicyApplied, ProvedTime, Report, SignatureReport};
use crate::pdf::read::{self, FoundKind};
use crate::source::{Bytes, Ranges, Source};

/// What to validate against.
pub struct Validation<'a> {
    /// The policy applied.
    pub policy: &'a ValidationPolicy,
    /// The policy files.
    pub policies: &'a policies::Policies,
    /// The trust anchors and qualified CAs.
    pub trust: &'a Trust,
    /// The validation time.
    pub now: SystemTime,
    /// Where to fetch revocation evidence the document lacks (`--online`, or the policy's
    /// `online_revocation`); `None`: only what the document embeds counts.
    pub online: Option<&'a dyn core::Fetch>,
}

fn finding(code: &'static str, ar: &str, en: impl Into<String>) -> Finding {
    Finding { code, ar: ar.into(), en: en.into() }
}

/// A report entry for something that cannot be validated at all.
fn unusable(id: &str, kind: &'static str, conclusion: Conclusion, f: Finding, now: SystemTime) -> SignatureReport {
    let mut report = SignatureReport::unusable(id, kind, conclusion, f, rfc3339(now));
    report.covers.whole_document = false;
    report
}

/// What a file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Pdf,
    Cms,
    Timestamp,
    Unsupported(&'static str),
}

/// What a file is, from its first kilobyte; a CMS is decoded whole (`read` reads it).
fn kind(bytes: Bytes<'_>) -> (Kind, Option<Vec<u8>>) {
    let Ok(head) = bytes.read_up_to(0, 1024) else { return (Kind::Unsupported("an unreadable file"), None) };
    if head.windows(5).any(|w| w == b"%PDF-") {
        return (Kind::Pdf, None);
    }
    if head.starts_with(b"PK\x03\x04") {
        return (Kind::Unsupported("ASiC (a ZIP container)"), None);
    }
    let text = String::from_utf8_lossy(&head[..head.len().min(64)]);
    if text.trim_start_matches('\u{feff}').trim_start().starts_with('<') {
        return (Kind::Unsupported("XAdES (XML)"), None);
    }
    // Not a PDF: a CMS (a signature or a timestamp token) is read whole, as its decoder needs.
    let Ok(all) = bytes.read(0..bytes.len()) else { return (Kind::Unsupported("an unreadable file"), None) };
    let kind = cms_kind(&all);
    (kind, Some(all))
}

fn cms_kind(bytes: &[u8]) -> Kind {
    match SignedData::from_content_info(bytes) {
        Ok(sd) if sd.encap_content_info.econtent_type == oid::TST_INFO => Kind::Timestamp,
        Ok(_) => Kind::Cms,
        Err(pkix::PkixError::Invalid(why)) if why == pkix::cms::TOO_MANY_SET_ELEMENTS => Kind::Unsupported(pkix::cms::TOO_MANY_SET_ELEMENTS),
        Err(_) => Kind::Unsupported("an unknown format"),
    }
}

/// Validates `bytes` (named `name`), with `detached` the document a detached CAdES
/// signature or a timestamp token is over: [`validate_source`] on bytes in memory.
pub fn validate(bytes: &[u8], name: &str, detached: Option<&[u8]>, v: &Validation<'_>) -> Report {
    validate_source(&bytes, name, detached.as_ref().map(|d| d as &dyn Source), v)
}

/// Validates the file `source` (named `name`), with `detached` the document a detached CAdES
/// signature or a timestamp token is over. Neither is held in memory: a PDF's structures are
/// read where its cross-reference sections say, its signed byte ranges and a detached
/// document are hashed in chunks ([`crate::source::CHUNK`]); only a CMS signature or token
/// (not a PDF) is read whole.
pub fn validate_source(source: &dyn Source, name: &str, detached: Option<&dyn Source>, v: &Validation<'_>) -> Report {
    let bytes = Bytes::new(source);
    let detached = detached.map(Bytes::new);
    let (kind, cms) = kind(bytes);
    let cms = cms.unwrap_or_default();
    let format = match kind {
        Kind::Pdf => "PDF",
        Kind::Cms => "CMS",
        Kind::Timestamp => "TIMESTAMP",
        Kind::Unsupported(_) => "UNKNOWN",
    };
    let mut sha256 = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let read = Ranges::whole(bytes).chunks(|chunk| sha256.update(chunk));
    let document = DocumentInfo {
        name: name.to_owned(),
        size: bytes.len() as u64,
        // A file that cannot be read to its end has no digest; what was read of it is reported on.
        sha256: read.map(|()| hex::encode(sha256.finish())).unwrap_or_default(),
        format,
    };
    let policy =
        PolicyApplied { id: v.policy.id.clone(), revision: v.policy.revision, name: Bilingual { ar: v.policy.name.ar.clone(), en: v.policy.name.en.clone() } };
    let accepted = |f: SignatureFormat| v.policy.formats.contains(&f);
    let refused_by_policy = |what: &str| {
        let f = finding("FORMAT_NOT_ACCEPTED", "سياسة التحقق لا تقبل هذا النوع من التوقيعات", format!("policy {} does not accept {what}", v.policy.id));
        vec![unusable("document", "signature", Conclusion::indeterminate(SubIndication::SigConstraintsFailure), f, v.now)]
    };
    let signatures = match kind {
        Kind::Unsupported(what) => {
            let f = finding(
                "FORMAT_NOT_SUPPORTED",
                "صيغة الملف غير مدعومة",
                format!("format not supported: {what}; Hawiya validates PAdES, CAdES and RFC 3161 timestamps"),
            );
            vec![unusable("document", "signature", Conclusion::failed(SubIndication::FormatFailure), f, v.now)]
        }
        Kind::Pdf if !accepted(SignatureFormat::Pades) => refused_by_policy("PAdES"),
        Kind::Cms if !accepted(SignatureFormat::Cades) => refused_by_policy("CAdES"),
        Kind::Timestamp if !accepted(SignatureFormat::Timestamp) => refused_by_policy("timestamps"),
        Kind::Pdf => pades(bytes, v),
        Kind::Cms => cades(&cms, detached, v),
        Kind::Timestamp => timestamp(&cms, detached, v),
    };
    Report::new(policy, rfc3339(v.now), document, signatures)
}

fn inputs<'a>(
    v: &'a Validation<'a>,
    certificates: &'a [Vec<u8>],
    ocsp: &'a [Vec<u8>],
    crls: &'a [Vec<u8>],
    archive_poe: Option<(SystemTime, String)>,
) -> Inputs<'a> {
    Inputs { policy: v.policy, policies: v.policies, trust: v.trust, certificates, ocsp, crls, now: v.now, archive_poe, online: v.online }
}

fn cades(bytes: &[u8], detached: Option<Bytes<'_>>, v: &Validation<'_>) -> Vec<SignatureReport> {
    let inputs = inputs(v, &[], &[], &[], None);
    let content = match detached {
        Some(d) => core::validate(bytes, Content::Detached(Ranges::whole(d)), &inputs),
        None => core::validate(bytes, Content::Encapsulated, &inputs),
    };
    content
        .into_iter()
        .map(|mut r| {
            r.format = format!("CAdES-{}", r.format);
            r
        })
        .collect()
}

fn timestamp(bytes: &[u8], detached: Option<Bytes<'_>>, v: &Validation<'_>) -> Vec<SignatureReport> {
    let Some(document) = detached else {
        let f = finding("DETACHED_CONTENT_MISSING", "الختم الزمني على مستند لم يُعطَ", "a timestamp token is over a document: give it (--detached)");
        return vec![unusable("timestamp-1", "timestamp", Conclusion::indeterminate(SubIndication::SignedDataNotFound), f, v.now)];
    };
    let inputs = inputs(v, &[], &[], &[], None);
    let evidence = Evidence::new(
        Vec::new(),
        &[],
        AlgorithmPolicy { allow_sha1: true, ..AlgorithmPolicy::default() },
        std::time::Duration::from_secs(v.policy.revocation_freshness),
    );
    let ts = core::validate_timestamp(bytes, &Ranges::whole(document), &inputs, &evidence, &[], true);
    vec![timestamp_report("timestamp-1", "timestamp", ts, v.now)]
}

fn timestamp_report(id: &str, kind: &'static str, ts: core::Timestamp, now: SystemTime) -> SignatureReport {
    let mut r = unusable(id, kind, ts.conclusion, finding("", "", ""), now);
    r.format = "RFC3161".into();
    r.blocks = vec![BlockResult { block: "timestamp-validation", conclusion: ts.conclusion, findings: ts.findings.clone() }];
    r.errors = ts.findings;
    r.covers.whole_document = true;
    if let Some(t) = ts.gen_time {
        r.best_signature_time = ProvedTime { time: rfc3339(t), proof: "timestamp", timestamp_serial: ts.serial };
    }
    r
}

fn pades(bytes: Bytes<'_>, v: &Validation<'_>) -> Vec<SignatureReport> {
    let damaged = |e: String| {
        let f = finding("PDF_DAMAGED", "ملف PDF تالف أو غير مقروء", format!("the PDF cannot be read: {e}"));
        vec![unusable("document", "signature", Conclusion::failed(SubIndication::FormatFailure), f, v.now)]
    };
    let found = match read::signatures(&bytes) {
        Ok(found) => found,
        Err(e) => return damaged(e.to_string()),
    };
    let store = match read::security_store(&bytes) {
        Ok(store) => store,
        Err(e) => return damaged(e.to_string()),
    };
    // A file that does not end with a complete revision was cut or damaged: what it signs
    // cannot be told (an update being written, a download cut short).
    if !read::ends_complete(&bytes) {
        return damaged("it does not end with a complete revision (%%EOF): truncated or damaged".into());
    }
    let certification = found.iter().find_map(|s| s.certification);
    let policy_algorithms = AlgorithmPolicy { allow_sha1: true, ..AlgorithmPolicy::default() };
    let evidence = Evidence::new(store.ocsp_responses.clone(), &store.crls, policy_algorithms, std::time::Duration::from_secs(v.policy.revocation_freshness));
    let extra: Vec<x509_cert::Certificate> = store.certificates.iter().filter_map(|d| x509_cert::Certificate::from_der(d).ok()).collect();
    let base = inputs(v, &store.certificates, &store.ocsp_responses, &store.crls, None);

    // Document timestamps first: a valid one proves every revision it covers existed.
    let mut timestamp_reports = std::collections::HashMap::new();
    let mut proofs = Vec::new();
    for (i, s) in found.iter().enumerate().filter(|(_, s)| s.kind == FoundKind::DocumentTimestamp) {
        let report = match read::signed_parts(&bytes, s) {
            Err(problem) => {
                let f = finding("BYTE_RANGE", "النطاق الموقّع لا يغطي الملف كما يجب", problem.to_string());
                unusable(&s.field, "document-timestamp", Conclusion::failed(SubIndication::FormatFailure), f, v.now)
            }
            Ok(parts) => {
                let ts = core::validate_timestamp(&s.contents, &Ranges::new(bytes, parts.to_vec()), &base, &evidence, &extra, false);
                if let (true, Some(t)) = (ts.conclusion.passed(), ts.gen_time) {
                    proofs.push((s.signed_end(), t, ts.serial.clone().unwrap_or_default()));
                }
                let mut r = timestamp_report(&s.field, "document-timestamp", ts, v.now);
                r.covers = coverage(bytes, s, certification);
                r
            }
        };
        timestamp_reports.insert(i, report);
    }
    let mut reports = Vec::new();
    // A hostile file may give thousands of fields the same signature (byte range and CMS):
    // each is validated once, and what followed each revision is read once.
    let mut validated: std::collections::HashMap<([usize; 4], &[u8]), SignatureReport> = std::collections::HashMap::new();
    let mut coverages = std::collections::HashMap::new();
    let mut covers = |s: &read::FoundSignature| coverages.entry(s.byte_range).or_insert_with(|| coverage(bytes, s, certification)).clone();
    for (i, s) in found.iter().enumerate() {
        if let Some(r) = validated.get(&(s.byte_range, s.contents.as_slice())) {
            reports.push(SignatureReport { id: s.field.clone(), ..r.clone() });
            continue;
        }
        if let Some(r) = timestamp_reports.remove(&i) {
            reports.push(r);
            continue;
        }
        let parts = match read::signed_parts(&bytes, s) {
            Ok(parts) => parts,
            Err(problem) => {
                let f = finding("BYTE_RANGE", "النطاق الموقّع لا يغطي الملف كما يجب", problem.to_string());
                reports.push(unusable(&s.field, "signature", Conclusion::failed(SubIndication::FormatFailure), f, v.now));
                continue;
            }
        };
        // The earliest valid document timestamp over a later revision proves this signature.
        let archive = proofs.iter().filter(|(end, _, _)| *end > s.signed_end()).min_by_key(|t| t.1).map(|(_, t, serial)| (*t, serial.clone()));
        let lta = archive.is_some();
        let inputs = Inputs { archive_poe: archive, ..inputs(v, &store.certificates, &store.ocsp_responses, &store.crls, None) };
        let mut r = core::validate(&s.contents, Content::Detached(Ranges::new(bytes, parts.to_vec())), &inputs).into_iter().next().unwrap_or_else(|| {
            let f = finding("NO_SIGNER", "لا موقّع في التوقيع", "the signature has no signer");
            unusable(&s.field, "signature", Conclusion::failed(SubIndication::FormatFailure), f, v.now)
        });
        r.id = s.field.clone();
        if s.sub_filter != "ETSI.CAdES.detached" && r.format.starts_with("BASELINE") {
            // adbe.pkcs7.detached and others: a CMS signature, not a PAdES baseline one.
            r.format = "NOT-ETSI".into();
        }
        r.format = match (r.format.as_str(), lta) {
            ("BASELINE-LT", true) => "PAdES-BASELINE-LTA".into(),
            (level, _) => format!("PAdES-{level}"),
        };
        r.covers = covers(s);
        if r.covers.later_changes.iter().any(|c| !c.allowed) && r.conclusion.passed() {
            let f = finding(
                "CHANGED_AFTER_SIGNING",
                "تغيّر المستند بعد التوقيع بطريقة لا تسمح بها صلاحيات التوقيع",
                "the document was changed after this signature in a way its permissions do not allow",
            );
            // The file is no longer a signed document with allowed updates (ISO 32000-2
            // §12.8.2.2): what the signature covers is not what is shown.
            r.conclusion = Conclusion::failed(SubIndication::FormatFailure);
            r.blocks.push(BlockResult { block: "signature-acceptance-validation", conclusion: r.conclusion, findings: vec![f.clone()] });
            r.errors.push(f);
        }
        validated.insert((s.byte_range, s.contents.as_slice()), r.clone());
        reports.push(r);
    }
    reports
}

/// The most later changes a report lists per signature: a hostile update may change
/// thousands of objects, and a report per signature listing them all grows quadratically.
/// Beyond it, the changes not allowed come first, so the verdict and the reason stay.
const MAX_LISTED_CHANGES: usize = 100;

fn coverage(bytes: Bytes<'_>, s: &read::FoundSignature, certification: Option<u8>) -> Coverage {
    let [a, b, c, d] = s.byte_range;
    let mut later_changes: Vec<_> = read::changes_after(&bytes, s, certification)
        .unwrap_or_default()
        .into_iter()
        .map(|c| super::report::Change { kind: c.kind, object: Some(c.object), allowed: c.allowed })
        .collect();
    if later_changes.len() > MAX_LISTED_CHANGES {
        later_changes.sort_by_key(|c| c.allowed);
        later_changes.truncate(MAX_LISTED_CHANGES);
    }
    Coverage { byte_range: Some([a as u64, b as u64, c as u64, d as u64]), whole_document: s.signed_end() == bytes.len(), later_changes }
}
