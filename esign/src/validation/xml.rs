//! The validation report as ETSI TS 119 102-2 XML (v1.2.1, namespace
//! `http://uri.etsi.org/19102/v1.2.1#`): the same content as the JSON [`Report`], in the
//! form other validators (DSS) and auditors' tools read.
//!
//! Written by hand (no XML library): every text and attribute goes through [`escape`]; the
//! tests check the output against the ETSI schema with `xmllint --schema`
//! (`tests/etsi/TS119102-2-v122.xsd`).
//!
//! What goes where:
//! - per signature a `SignatureValidationReport`: `SignatureIdentifier` (its id in the
//!   document), `ValidationConstraintsEvaluationReport` (the policy and every building
//!   block's result), `ValidationTimeInfo` (validation time and best-signature-time),
//!   `SignersDocument` (the document's SHA-256), `SignatureAttributes` (claimed signing time,
//!   PDF byte range), `SignerInformation`, `SignatureQuality`, `SignatureValidationProcess`,
//!   `SignatureValidationStatus` (main and sub-indication URIs, the chain, revocation and the
//!   findings as `AdditionalValidationReportData`);
//! - `SignatureValidationObjects`: each certificate (by its SHA-256) and each piece of
//!   revocation evidence used, referred to by id.
//!
//! Where TS 119 102-2 leaves a choice, the report makes DSS's (the EU's reference validator,
//! whose reports auditors' tools already read), so the two can be compared line by line:
//! - `SignatureValidationProcessID` is `…:validationprocess:LTA`: the process Hawiya runs is
//!   EN 319 102-1's §5.6 one (archive and document timestamps as proof of existence, which
//!   contains §5.5 and §5.3), and DSS names the highest process it ran, LTA under its default
//!   policy, for every signature, whatever its level;
//! - `BestSignatureTime` has `TypeOfProof` `…:poetype:validation`: the time is derived by the
//!   validation from the timestamps (or is the validation time), never provided or set by
//!   policy — as DSS and pyHanko write it;
//! - a certificate is a `ValidationObject` by its SHA-256 (`DigestAlgAndValue`), and a piece
//!   of revocation evidence one described inline (`direct`: what it says about which
//!   certificate, and when). DSS carries both by value (`base64` of the DER), which makes the
//!   report a proof on its own; the report does not keep the DER yet;
//! - `SignatureQualityInformation` is DSS's `urn:cef:dss:signatureQualification:` URI
//!   (`QESig`, `AdESig-QC`, `AdESig`, `NA`): the standard defines none of its own.

use std::fmt::Write as _;

use base64::Engine as _;

use super::report::{Conclusion, Finding, Indication, Report, RevocationEvidence, SignatureReport};

/// The namespace of the validation report.
pub const NAMESPACE: &str = "http://uri.etsi.org/19102/v1.2.1#";
const DS: &str = "http://www.w3.org/2000/09/xmldsig#";
const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
/// Findings and other report data of ours, as `ReportData` types.
const HAWIYA: &str = "urn:hawiya:validation:";

/// The URI of a main indication (TS 119 102-2 §5.1.3: `urn:etsi:019102:mainindication:…`).
pub fn main_indication_uri(i: Indication) -> &'static str {
    match i {
        Indication::TotalPassed => "urn:etsi:019102:mainindication:total-passed",
        Indication::TotalFailed => "urn:etsi:019102:mainindication:total-failed",
        Indication::Indeterminate => "urn:etsi:019102:mainindication:indeterminate",
    }
}

/// The URI of a sub-indication (`urn:etsi:019102:subindication:HASH_FAILURE`, …).
pub fn sub_indication_uri(s: super::report::SubIndication) -> String {
    format!("urn:etsi:019102:subindication:{}", s.as_str())
}

/// `text` with the five XML special characters escaped (for text and attribute values), and
/// the characters XML 1.0 cannot carry dropped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// A hex SHA-256 as base64, for `ds:DigestValue` (empty if it is not hex).
fn hex_to_base64(hex_digest: &str) -> String {
    hex::decode(hex_digest).map(|d| base64::engine::general_purpose::STANDARD.encode(d)).unwrap_or_default()
}

fn digest(out: &mut String, element: &str, sha256_hex: &str) {
    let _ = write!(out, "<{element}><ds:DigestMethod Algorithm=\"{SHA256}\"/><ds:DigestValue>{}</ds:DigestValue></{element}>", hex_to_base64(sha256_hex));
}

fn status(out: &mut String, element: &str, c: &Conclusion, data: impl FnOnce(&mut String)) {
    let _ = write!(out, "<{element}><MainIndication>{}</MainIndication>", main_indication_uri(c.indication));
    if let Some(s) = c.sub_indication {
        let _ = write!(out, "<SubIndication>{}</SubIndication>", sub_indication_uri(s));
    }
    data(out);
    let _ = write!(out, "</{element}>");
}

/// The id of a certificate's validation object.
fn certificate_id(sha256_hex: &str) -> String {
    format!("C-{}", escape(sha256_hex))
}

/// The validation objects: each certificate once (by its digest), each revocation evidence
/// once per signature; returns the ids of the revocation evidence per signature.
struct Objects {
    xml: String,
    certificates: Vec<String>,
    revocation: Vec<Vec<String>>,
}

fn objects(report: &Report) -> Objects {
    let mut o = Objects { xml: String::new(), certificates: Vec::new(), revocation: Vec::new() };
    for (i, s) in report.signatures.iter().enumerate() {
        for c in &s.chain {
            if o.certificates.contains(&c.sha256) {
                continue;
            }
            o.certificates.push(c.sha256.clone());
            let _ = write!(
                o.xml,
                "<ValidationObject id=\"{}\"><ObjectType>urn:etsi:019102:validationObject:certificate</ObjectType><ValidationObjectRepresentation>",
                certificate_id(&c.sha256)
            );
            digest(&mut o.xml, "DigestAlgAndValue", &c.sha256);
            o.xml.push_str("</ValidationObjectRepresentation></ValidationObject>");
        }
        let mut ids = Vec::new();
        for (j, r) in s.revocation.iter().enumerate() {
            let id = format!("R-{}-{}", i + 1, j + 1);
            revocation_object(&mut o.xml, &id, r);
            ids.push(id);
        }
        o.revocation.push(ids);
    }
    o
}

fn revocation_object(out: &mut String, id: &str, r: &RevocationEvidence) {
    let kind = if r.kind == "crl" { "CRL" } else { "OCSPResponse" };
    let _ =
        write!(out, "<ValidationObject id=\"{id}\"><ObjectType>urn:etsi:019102:validationObject:{kind}</ObjectType><ValidationObjectRepresentation><direct>");
    // The evidence as the report knows it: what it says about which certificate, and when.
    let _ = write!(
        out,
        "<h:Revocation xmlns:h=\"{HAWIYA}\" kind=\"{}\" source=\"{}\" status=\"{}\" certificate=\"{}\" producedAt=\"{}\" thisUpdate=\"{}\"",
        escape(r.kind),
        escape(r.source),
        escape(r.status),
        escape(&r.certificate),
        escape(&r.produced_at),
        escape(&r.this_update)
    );
    if let Some(n) = &r.next_update {
        let _ = write!(out, " nextUpdate=\"{}\"", escape(n));
    }
    if let Some(t) = &r.revoked_at {
        let _ = write!(out, " revokedAt=\"{}\"", escape(t));
    }
    let _ = write!(
        out,
        "/></direct></ValidationObjectRepresentation><POE><POETime>{}</POETime><TypeOfProof>urn:etsi:019102:poetype:validation</TypeOfProof></POE></ValidationObject>",
        escape(&r.produced_at)
    );
}

fn report_data(out: &mut String, kind: &str, value: &str) {
    let _ = write!(out, "<ReportData><Type>{HAWIYA}{kind}</Type><Value>{}</Value></ReportData>", escape(value));
}

fn findings(out: &mut String, kind: &str, list: &[Finding]) {
    for f in list {
        report_data(out, kind, &format!("{}: {} | {}", f.code, f.en, f.ar));
    }
}

/// The DSS-compatible URI of a qualification (`QESig`, `AdESig-QC`, `AdESig`, `n/a`).
fn quality_uri(q: &str) -> String {
    format!("urn:cef:dss:signatureQualification:{}", if q == "n/a" { "NA" } else { q })
}

/// The URI naming a building block (EN 319 102-1 §5.2 to §5.6).
fn block_uri(block: &str) -> String {
    format!("urn:etsi:019102:validationConstraint:{block}")
}

fn signature(out: &mut String, report: &Report, s: &SignatureReport, revocation: &[String]) {
    out.push_str("<SignatureValidationReport>");
    let _ = write!(
        out,
        "<SignatureIdentifier><HashOnly>false</HashOnly><DocHashOnly>false</DocHashOnly><DAIdentifier>{}</DAIdentifier></SignatureIdentifier>",
        escape(&s.id)
    );
    // The policy and each building block's result.
    out.push_str("<ValidationConstraintsEvaluationReport><SignatureValidationPolicy><SignaturePolicyIdentifier><XAdES:SignaturePolicyImplied/></SignaturePolicyIdentifier>");
    let _ = write!(
        out,
        "<PolicyName>{} (revision {}): {}</PolicyName></SignatureValidationPolicy>",
        escape(&report.policy.id),
        report.policy.revision,
        escape(&report.policy.name.en)
    );
    for b in &s.blocks {
        let _ = write!(
            out,
            "<ValidationConstraint><ValidationConstraintIdentifier>{}</ValidationConstraintIdentifier><ConstraintStatus><Status>urn:etsi:019102:constraintStatus:applied</Status></ConstraintStatus>",
            escape(&block_uri(b.block))
        );
        status(out, "ValidationStatus", &b.conclusion, |out| {
            if !b.findings.is_empty() {
                out.push_str("<AssociatedValidationReportData><AdditionalValidationReportData>");
                findings(out, "error", &b.findings);
                out.push_str("</AdditionalValidationReportData></AssociatedValidationReportData>");
            }
        });
        out.push_str("</ValidationConstraint>");
    }
    out.push_str("</ValidationConstraintsEvaluationReport>");
    // Times.
    let t = &s.best_signature_time;
    let _ = write!(
        out,
        "<ValidationTimeInfo><ValidationTime>{}</ValidationTime><BestSignatureTime><POETime>{}</POETime><TypeOfProof>urn:etsi:019102:poetype:validation</TypeOfProof></BestSignatureTime></ValidationTimeInfo>",
        escape(&report.validation_time),
        escape(&t.time)
    );
    out.push_str("<SignersDocument>");
    digest(out, "DigestAlgAndValue", &report.document.sha256);
    out.push_str("</SignersDocument>");
    // Attributes, when there is one to report (the element may not be empty).
    if s.claimed_signing_time.is_some() || s.covers.byte_range.is_some() {
        out.push_str("<SignatureAttributes>");
        if let Some(time) = &s.claimed_signing_time {
            let _ = write!(out, "<SigningTime Signed=\"true\"><Time>{}</Time></SigningTime>", escape(time));
        }
        if let Some([a, b, c, d]) = s.covers.byte_range {
            let _ = write!(out, "<ByteRange>{a} {b} {c} {d}</ByteRange>");
        }
        out.push_str("</SignatureAttributes>");
    }
    if let Some(signing) = s.chain.first() {
        let _ = write!(out, "<SignerInformation><SignerCertificate VOReference=\"{}\"/>", certificate_id(&signing.sha256));
        let name = s.signer.as_ref().and_then(|n| n.name_latin.clone().or_else(|| n.name_ar.clone())).unwrap_or_else(|| signing.subject.clone());
        let _ = write!(out, "<Signer>{}</Signer></SignerInformation>", escape(&name));
    }
    let _ = write!(
        out,
        "<SignatureQuality><SignatureQualityInformation>{}</SignatureQualityInformation></SignatureQuality>",
        escape(&quality_uri(s.qualification))
    );
    out.push_str("<SignatureValidationProcess><SignatureValidationProcessID>urn:etsi:019102:validationprocess:LTA</SignatureValidationProcessID></SignatureValidationProcess>");
    status(out, "SignatureValidationStatus", &s.conclusion, |out| {
        out.push_str("<AssociatedValidationReportData>");
        if let Some(anchor) = s.chain.iter().find(|c| c.trust_anchor) {
            let _ = write!(out, "<TrustAnchor VOReference=\"{}\"/>", certificate_id(&anchor.sha256));
        }
        if let Some((signing, rest)) = s.chain.split_first() {
            let _ = write!(out, "<CertificateChain><SigningCertificate VOReference=\"{}\"/>", certificate_id(&signing.sha256));
            for c in rest.iter().filter(|c| !c.trust_anchor) {
                let _ = write!(out, "<IntermediateCertificate VOReference=\"{}\"/>", certificate_id(&c.sha256));
            }
            if let Some(anchor) = rest.iter().find(|c| c.trust_anchor) {
                let _ = write!(out, "<TrustAnchor VOReference=\"{}\"/>", certificate_id(&anchor.sha256));
            }
            out.push_str("</CertificateChain>");
        }
        for id in revocation {
            let _ = write!(out, "<RelatedValidationObject VOReference=\"{id}\"/>");
        }
        // The signing certificate's revocation, when the evidence says it was revoked.
        if let (Some(signing), Some((r, id))) =
            (s.chain.first(), s.revocation.iter().zip(revocation).find(|(r, _)| r.status == "revoked" && r.revoked_at.is_some()))
        {
            let _ = write!(
                out,
                "<RevocationStatusInformation><ValidationObjectId VOReference=\"{}\"/><RevocationTime>{}</RevocationTime><RevocationObject VOReference=\"{id}\"/></RevocationStatusInformation>",
                certificate_id(&signing.sha256),
                escape(r.revoked_at.as_deref().unwrap_or_default())
            );
        }
        out.push_str("<AdditionalValidationReportData>");
        report_data(out, "kind", s.kind);
        report_data(out, "format", &s.format);
        report_data(out, "best-signature-time-proof", t.proof);
        if let Some(serial) = &t.timestamp_serial {
            report_data(out, "best-signature-time-timestamp-serial", serial);
        }
        if let Some(national_id) = s.signer.as_ref().and_then(|n| n.national_id.as_deref()) {
            report_data(out, "signer-national-id", national_id);
        }
        if let Some(name) = s.signer.as_ref().and_then(|n| n.name_ar.as_deref()) {
            report_data(out, "signer-name-ar", name);
        }
        if let Some(after) = &s.retry_after {
            report_data(out, "retry-after", after);
        }
        report_data(out, "covers-whole-document", if s.covers.whole_document { "true" } else { "false" });
        for c in &s.covers.later_changes {
            let object = c.object.as_deref().map(|o| format!(" {o}")).unwrap_or_default();
            report_data(out, "later-change", &format!("{}{object} {}", c.kind, if c.allowed { "allowed" } else { "not-allowed" }));
        }
        findings(out, "error", &s.errors);
        findings(out, "warning", &s.warnings);
        out.push_str("</AdditionalValidationReportData></AssociatedValidationReportData>");
    });
    out.push_str("</SignatureValidationReport>");
}

/// The report as an ETSI TS 119 102-2 `ValidationReport` document (UTF-8). A report with no
/// signature still has one `SignatureValidationReport` (the schema requires one): the
/// document's conclusion, INDETERMINATE / SIGNED_DATA_NOT_FOUND.
pub fn to_xml(report: &Report) -> String {
    let mut out = String::with_capacity(4096);
    let _ = write!(
        out,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ValidationReport xmlns=\"{NAMESPACE}\" xmlns:ds=\"{DS}\" xmlns:XAdES=\"http://uri.etsi.org/01903/v1.3.2#\">"
    );
    let o = objects(report);
    if report.signatures.is_empty() {
        out.push_str("<SignatureValidationReport><SignersDocument>");
        digest(&mut out, "DigestAlgAndValue", &report.document.sha256);
        out.push_str("</SignersDocument>");
        status(&mut out, "SignatureValidationStatus", &report.conclusion, |_| {});
        out.push_str("</SignatureValidationReport>");
    }
    for (s, revocation) in report.signatures.iter().zip(&o.revocation) {
        signature(&mut out, report, s, revocation);
    }
    if !o.xml.is_empty() {
        let _ = write!(out, "<SignatureValidationObjects>{}</SignatureValidationObjects>", o.xml);
    }
    out.push_str("</ValidationReport>\n");
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use std::process::Command;

    use super::*;
    use crate::validation::report::{
        Bilingual, BlockResult, CertificateInfo, Change, Coverage, DocumentInfo, PolicyApplied, ProvedTime, SignerInfo, SubIndication,
    };

    fn certificate(name: &str, issuer: &str, digest: char, anchor: bool) -> CertificateInfo {
        CertificateInfo {
            subject: format!("CN={name},C=JO"),
            issuer: format!("CN={issuer},C=JO"),
            serial: "01ab".into(),
            not_before: "2026-01-01T00:00:00Z".into(),
            not_after: "2028-01-01T00:00:00Z".into(),
            sha256: digest.to_string().repeat(64),
            trust_anchor: anchor,
        }
    }

    /// A report with every part filled: a passed qualified PAdES signature with its chain,
    /// OCSP and CRL evidence and an allowed later change, and a revoked one that failed,
    /// whose texts need escaping.
    pub(crate) fn sample() -> Report {
        let chain = vec![
            certificate("Citizen", "Citizen Signing CA", 'a', false),
            certificate("Citizen Signing CA", "National Root CA", 'b', false),
            certificate("National Root CA", "National Root CA", 'c', true),
        ];
        let evidence = |status: &'static str, revoked_at: Option<&str>| RevocationEvidence {
            certificate: "CN=Citizen,C=JO".into(),
            kind: "ocsp",
            source: "dss",
            status,
            produced_at: "2026-11-29T20:00:05Z".into(),
            this_update: "2026-11-29T20:00:05Z".into(),
            next_update: Some("2026-11-30T20:00:05Z".into()),
            revoked_at: revoked_at.map(Into::into),
        };
        let passed = SignatureReport {
            id: "Signature1".into(),
            kind: "signature",
            conclusion: Conclusion::PASSED,
            format: "PAdES-BASELINE-LT".into(),
            qualification: "QESig",
            signer: Some(SignerInfo {
                name_ar: Some("ليلى الأحمد".into()), name_latin: Some("Layla Al-Ahmad".into()), national_id: Some("9861234567".into())
            }),
            claimed_signing_time: Some("2026-11-29T19:59:58Z".into()),
            best_signature_time: ProvedTime { time: "2026-11-29T20:00:00Z".into(), proof: "signature-timestamp", timestamp_serial: Some("7f01".into()) },
            retry_after: None,
            revocation: vec![
                evidence("good", None),
                RevocationEvidence { kind: "crl", certificate: "CN=Citizen Signing CA,C=JO".into(), ..evidence("good", None) },
            ],
            chain: chain.clone(),
            covers: Coverage {
                byte_range: Some([0, 100, 4200, 300]),
                whole_document: false,
                later_changes: vec![Change { kind: "dss", object: Some("12 0 R".into()), allowed: true }],
            },
            blocks: vec![BlockResult { block: "format-checking", conclusion: Conclusion::PASSED, findings: Vec::new() }],
            errors: Vec::new(),
            warnings: vec![Finding { code: "LATER_UPDATE", ar: "تحديث لاحق مسموح".into(), en: "an allowed later update".into() }],
        };
        let revoked = Finding {
            code: "REVOKED",
            ar: "الشهادة ملغاة <قبل> التوقيع".into(),
            en: "the certificate was revoked <before> the signature & \"its\" timestamp".into(),
        };
        let failed = SignatureReport {
            id: "Sig<2>&\"".into(),
            conclusion: Conclusion::failed(SubIndication::Revoked),
            qualification: "n/a",
            signer: None,
            claimed_signing_time: None,
            best_signature_time: ProvedTime { time: "2026-11-29T21:00:00Z".into(), proof: "validation-time", timestamp_serial: None },
            revocation: vec![evidence("revoked", Some("2026-11-01T00:00:00Z"))],
            covers: Coverage { byte_range: None, whole_document: true, later_changes: Vec::new() },
            blocks: vec![BlockResult {
                block: "x509-certificate-validation",
                conclusion: Conclusion::failed(SubIndication::Revoked),
                findings: vec![revoked.clone()],
            }],
            errors: vec![revoked],
            warnings: Vec::new(),
            ..passed.clone()
        };
        Report::new(
            PolicyApplied {
                id: "qualified".into(), revision: 3, name: Bilingual { ar: "التوقيع المؤهل".into(), en: "Qualified signature".into() }
            },
            "2026-11-29T21:00:00Z".into(),
            DocumentInfo { name: "contract <1>.pdf".into(), size: 4500, sha256: "d".repeat(64), format: "PDF" },
            vec![passed, failed],
        )
    }

    /// Validates `xml` against the ETSI TS 119 102-2 schema; returns xmllint's verdict and
    /// its output.
    pub(crate) fn schema_valid(xml: &str) -> (bool, String) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("report.xml");
        std::fs::write(&path, xml).expect("write the report");
        let schema = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/etsi/TS119102-2-v122.xsd");
        let out = Command::new("xmllint")
            .args(["--noout", "--nonet", "--schema", schema])
            .arg(&path)
            .output()
            .expect("xmllint (libxml2-utils; scripts/env.sh ensure_test_dependencies installs it)");
        (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    }

    #[test]
    fn the_report_is_valid_under_the_etsi_schema_and_says_what_the_json_says() {
        let report = sample();
        let xml = to_xml(&report);
        let (valid, out) = schema_valid(&xml);
        assert!(valid, "{out}\n{xml}");
        assert!(xml.contains("<MainIndication>urn:etsi:019102:mainindication:total-failed</MainIndication><SubIndication>urn:etsi:019102:subindication:REVOKED</SubIndication>"), "{xml}");
        assert!(xml.contains("<MainIndication>urn:etsi:019102:mainindication:total-passed</MainIndication>"), "{xml}");
        // The document's digest, as base64, and the chain by reference to its objects.
        let document = base64::engine::general_purpose::STANDARD.encode([0xdd; 32]);
        assert!(xml.contains(&format!("<ds:DigestValue>{document}</ds:DigestValue>")), "{xml}");
        let signing = format!("C-{}", "a".repeat(64));
        assert!(xml.contains(&format!("<CertificateChain><SigningCertificate VOReference=\"{signing}\"/><IntermediateCertificate VOReference=\"C-{}\"/><TrustAnchor VOReference=\"C-{}\"/></CertificateChain>", "b".repeat(64), "c".repeat(64))), "{xml}");
        // Each certificate is one validation object, however many signatures use it.
        assert_eq!(xml.matches(&format!("<ValidationObject id=\"{signing}\">")).count(), 1);
        assert_eq!(xml.matches("urn:etsi:019102:validationObject:OCSPResponse").count(), 2);
        assert_eq!(xml.matches("urn:etsi:019102:validationObject:CRL").count(), 1);
        assert!(xml.contains("<RevocationTime>2026-11-01T00:00:00Z</RevocationTime><RevocationObject VOReference=\"R-2-1\"/>"), "{xml}");
        assert!(xml.contains("<SigningTime Signed=\"true\"><Time>2026-11-29T19:59:58Z</Time></SigningTime><ByteRange>0 100 4200 300</ByteRange>"), "{xml}");
        assert!(xml.contains("<SignatureQualityInformation>urn:cef:dss:signatureQualification:QESig</SignatureQualityInformation>"), "{xml}");
        assert!(xml.contains("<BestSignatureTime><POETime>2026-11-29T20:00:00Z</POETime>"), "{xml}");
        // What the document said is escaped, never markup.
        assert!(xml.contains("<DAIdentifier>Sig&lt;2&gt;&amp;&quot;</DAIdentifier>"), "{xml}");
        assert!(xml.contains("revoked &lt;before&gt; the signature &amp; &quot;its&quot; timestamp"), "{xml}");
        assert!(!xml.contains("<before>"));
    }

    #[test]
    fn the_schema_check_refuses_a_report_that_breaks_it() {
        // The check itself can fail: a status without its main indication is not a report.
        let xml = to_xml(&sample()).replacen("<MainIndication>urn:etsi:019102:mainindication:total-passed</MainIndication>", "", 1);
        let (valid, out) = schema_valid(&xml);
        assert!(!valid && out.contains("MainIndication"), "{out}");
    }

    #[test]
    fn a_document_without_signatures_still_makes_a_valid_report() {
        let mut report = sample();
        report = Report::new(report.policy, report.validation_time, report.document, Vec::new());
        let xml = to_xml(&report);
        let (valid, out) = schema_valid(&xml);
        assert!(valid, "{out}\n{xml}");
        assert!(xml.contains("urn:etsi:019102:subindication:SIGNED_DATA_NOT_FOUND"), "{xml}");
        assert!(!xml.contains("SignatureValidationObjects"));
    }

    #[test]
    fn escape_keeps_text_and_drops_what_xml_cannot_carry() {
        assert_eq!(escape("a<b>&'\"\u{1}\tc"), "a&lt;b&gt;&amp;&apos;&quot;\tc");
        assert_eq!(escape("ليلى"), "ليلى");
    }
}
