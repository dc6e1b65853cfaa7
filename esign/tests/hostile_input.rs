//! The validator on hostile input (issue 11, section 5): garbage, a cyclic cross-reference
//! chain, structures nested 100,000 deep, a CMS with 10,000 certificates and a PDF with
//! 10,000 signature fields each get a verdict or a clear error quickly, without a panic and
//! without a stack overflow (the tests run on the default 2 MB test thread stack).
//! The signed seeds are the fuzzing seeds (`fuzz/seeds`, from `tests/scripts/validation_corpus.py`).
// Test code: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant, SystemTime};

use cms::cert::CertificateChoices;
use der::Encode;
use esign::pdf::read;
use esign::validation::report::{Conclusion, Indication, Report};
use esign::validation::{Trust, Validation};
use pkix::etsi::SubIndication;
use x509_cert::serial_number::SerialNumber;

const DOCUMENT: &[u8] = include_bytes!("../../fuzz/seeds/document.txt");
const ROOT: &[u8] = include_bytes!("../../fuzz/seeds/root.pem");
const CADES_LT: &[u8] = include_bytes!("../../fuzz/seeds/cms/cades-detached-lt.p7s");
const PADES_LT: &[u8] = include_bytes!("../../fuzz/seeds/pdf/pades-b-lt.pdf");
const TOKEN: &[u8] = include_bytes!("../../fuzz/seeds/timestamp/document.tst");

/// What a hostile input may cost at most, in a debug build on a shared machine.
const QUICK: Duration = Duration::from_secs(30);

fn validate(bytes: &[u8], name: &str, detached: Option<&[u8]>) -> (Report, Duration) {
    let policies = policies::Policies::shipped().unwrap();
    let (_, root) = der::pem::decode_vec(ROOT).unwrap();
    let trust = Trust::new(policies.trust_list(), None, &[root]).unwrap();
    let validation = Validation { policy: policies.default_validation_policy(), policies: &policies, trust: &trust, now: SystemTime::now(), online: None };
    let started = Instant::now();
    let report = esign::validation::validate(bytes, name, detached, &validation);
    let took = started.elapsed();
    assert!(took < QUICK, "{name}: validating took {took:?}");
    (report, took)
}

fn codes(report: &Report) -> Vec<&str> {
    report.signatures.iter().flat_map(|s| s.errors.iter().map(|e| e.code)).collect()
}

/// A failure of the format, with `code` among the errors.
fn assert_format_failure(report: &Report, code: &str) {
    assert_eq!(report.conclusion.indication, Indication::TotalFailed, "{report:?}");
    assert_eq!(report.conclusion.sub_indication.map(|s| s.as_str()), Some("FORMAT_FAILURE"), "{report:?}");
    assert!(codes(report).contains(&code), "{:?}", codes(report));
}

/// A small xorshift generator: garbage that is the same on every run.
fn garbage(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

#[test]
fn garbage_is_a_format_failure() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("one megabyte of noise", garbage(1 << 20, 0x9e37_79b9_7f4a_7c15)),
        ("a PDF header and noise", [b"%PDF-1.7\n".as_slice(), &garbage(1 << 20, 7)].concat()),
        ("a PDF header alone", b"%PDF-".to_vec()),
        ("startxref past the end", b"%PDF-1.7\nstartxref\n18446744073709551615\n%%EOF\n".to_vec()),
        ("a DER length of 4 GB", vec![0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x06, 0x09]),
        ("a DER length of 2^64", vec![0x30, 0x88, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        ("the CMS cut in half", CADES_LT[..CADES_LT.len() / 2].to_vec()),
        ("the token cut in half", TOKEN[..TOKEN.len() / 2].to_vec()),
    ];
    for (what, bytes) in &cases {
        let (report, _) = validate(bytes, what, Some(DOCUMENT));
        assert_eq!(report.conclusion.indication, Indication::TotalFailed, "{what}: {report:?}");
        assert_eq!(report.conclusion.sub_indication.map(|s| s.as_str()), Some("FORMAT_FAILURE"), "{what}: {:?}", codes(&report));
        assert!(!codes(&report).is_empty(), "{what}: a failure says why");
    }
    // Bytes of the signed PDF changed: the unsigned update at its end (xref, trailer) gets a
    // verdict, whatever it is; a change in the signed range never passes.
    let signed_end = read::signatures(PADES_LT).unwrap()[0].byte_range[1];
    let positions = (PADES_LT.len() - 200..PADES_LT.len()).step_by(13).chain((0..signed_end).step_by(signed_end / 24));
    for at in positions {
        let mut bytes = PADES_LT.to_vec();
        bytes[at] ^= 0x5a;
        let (report, _) = validate(&bytes, "flipped.pdf", None);
        assert!(at >= signed_end || report.conclusion.indication != Indication::TotalPassed, "a changed byte at {at} passed");
    }
}

/// A classic one-object PDF whose trailer's /Prev is `prev` (the offset of its own xref
/// section when `prev` is `None`).
fn pdf_with_prev(prev: Option<usize>) -> (Vec<u8>, usize) {
    let mut out = b"%PDF-1.7\n".to_vec();
    let catalog = out.len();
    out.extend_from_slice(b"1 0 obj\n<< /Type /Catalog >>\nendobj\n");
    let xref = out.len();
    let prev = prev.unwrap_or(xref);
    out.extend_from_slice(
        format!("xref\n0 2\n0000000000 65535 f\r\n{catalog:010} 00000 n\r\ntrailer\n<< /Size 2 /Root 1 0 R /Prev {prev:010} >>\nstartxref\n{xref}\n%%EOF\n")
            .as_bytes(),
    );
    (out, xref)
}

#[test]
fn a_cyclic_cross_reference_chain_is_refused() {
    // A section that names itself as the previous one.
    let (itself, _) = pdf_with_prev(None);
    // Two sections naming each other.
    // (The /Prev is written in 10 digits, so naming the second section changes no offset.)
    let (first, first_xref) = pdf_with_prev(Some(0));
    let second_xref = first.len();
    let mut pair = pdf_with_prev(Some(second_xref)).0;
    assert_eq!(pair.len(), second_xref);
    pair.extend_from_slice(
        format!("xref\n0 1\n0000000000 65535 f\r\ntrailer\n<< /Size 2 /Root 1 0 R /Prev {first_xref} >>\nstartxref\n{second_xref}\n%%EOF\n").as_bytes(),
    );
    for (what, bytes) in [("itself", itself), ("a pair", pair)] {
        let error = read::signatures(&bytes).unwrap_err().to_string();
        assert!(error.contains("cross-reference sections loop"), "{what}: {error}");
        let (report, _) = validate(&bytes, what, None);
        assert_format_failure(&report, "PDF_DAMAGED");
    }
}

#[test]
fn structures_nested_100000_deep_are_refused_without_a_stack_overflow() {
    const DEPTH: usize = 100_000;
    let arrays = format!("{}{}", "[".repeat(DEPTH), "]".repeat(DEPTH));
    let dicts = format!("{}1{}", "<< /A ".repeat(DEPTH), " >>".repeat(DEPTH));
    let unclosed = "[<< /A ".repeat(DEPTH);
    for (what, nested) in [("arrays", arrays), ("dictionaries", dicts), ("unclosed", unclosed)] {
        let catalog = format!("<< /Type /Catalog /AcroForm << /Fields [2 0 R] >> /Deep {nested} >>");
        let field = format!("<< /FT /Sig /T (Deep) /V << /Type /Sig /ByteRange [0 1 2 3] /Contents <00> /Deep {nested} >> >>");
        for objects in
            [vec![catalog.into_bytes(), b"<< >>".to_vec()], vec![b"<< /Type /Catalog /AcroForm << /Fields [2 0 R] >> >>".to_vec(), field.into_bytes()]]
        {
            let bytes = esign::pdf::write_document(&objects);
            assert!(read::signatures(&bytes).is_err(), "{what}");
            let (report, _) = validate(&bytes, what, None);
            assert_format_failure(&report, "PDF_DAMAGED");
        }
    }
    // DER: 100,000 nested [0] constructed tags inside a ContentInfo, definite lengths.
    let mut der = Vec::new();
    for _ in 0..DEPTH {
        let mut outer = vec![0xa0];
        push_length(&mut outer, der.len());
        outer.extend_from_slice(&der);
        der = outer;
    }
    let oid = [0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
    let mut body = oid.to_vec();
    body.extend_from_slice(&der);
    let mut content_info = vec![0x30];
    push_length(&mut content_info, body.len());
    content_info.extend_from_slice(&body);
    let (report, _) = validate(&content_info, "deep.p7s", Some(DOCUMENT));
    assert_format_failure(&report, "FORMAT_NOT_SUPPORTED");
    // Indefinite lengths (BER), 100,000 deep, never closed.
    let ber = [&[0x30, 0x80][..], &oid, &[0xa0, 0x80].repeat(DEPTH)].concat();
    let (report, _) = validate(&ber, "deep-ber.p7s", Some(DOCUMENT));
    assert_format_failure(&report, "FORMAT_NOT_SUPPORTED");
}

fn push_length(out: &mut Vec<u8>, len: usize) {
    match len {
        0..0x80 => out.push(len as u8),
        _ => {
            let bytes = len.to_be_bytes();
            let skip = bytes.iter().take_while(|b| **b == 0).count();
            out.push(0x80 | (bytes.len() - skip) as u8);
            out.extend_from_slice(&bytes[skip..]);
        }
    }
}

/// DER of `tag` around `content`.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    push_length(&mut out, content.len());
    out.extend_from_slice(content);
    out
}

/// `CADES_LT` with at least `count` certificates: copies of its own with new serial numbers
/// (the same names and keys, so each is a candidate issuer, and every signature on them is
/// broken), written in reverse DER order, the order that costs a SET OF decoder most.
fn with_certificates(count: usize) -> Vec<u8> {
    let signed_data = pkix::cms::SignedData::from_content_info(CADES_LT).unwrap();
    let originals: Vec<CertificateChoices> = signed_data.certificates.as_ref().unwrap().0.iter().cloned().collect();
    let mut all: Vec<Vec<u8>> = originals.iter().map(|c| c.to_der().unwrap()).collect();
    let mut serial = 0u32;
    while all.len() < count {
        for original in &originals {
            let CertificateChoices::Certificate(certificate) = original else { continue };
            let mut copy = certificate.clone();
            serial += 1;
            copy.tbs_certificate.serial_number = SerialNumber::new(&[&[0x7f][..], &serial.to_be_bytes()].concat()).unwrap();
            all.push(copy.to_der().unwrap());
        }
    }
    all.truncate(count.max(originals.len()));
    all.sort_unstable_by(|a, b| b.cmp(a));
    // The SET's encoding under its IMPLICIT [1] tag.
    let crls = signed_data.crls.as_ref().map(|c| [&[0xa1][..], &c.to_der().unwrap()[1..]].concat()).unwrap_or_default();
    let body = [
        signed_data.version.to_der().unwrap(),
        signed_data.digest_algorithms.to_der().unwrap(),
        signed_data.encap_content_info.to_der().unwrap(),
        tlv(0xa0, &all.concat()),
        crls,
        signed_data.signer_infos.to_der().unwrap(),
    ]
    .concat();
    let oid = [0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
    tlv(0x30, &[&oid[..], &tlv(0xa0, &tlv(0x30, &body))].concat())
}

#[test]
fn a_cms_with_10000_certificates_is_refused_quickly_naming_the_limit() {
    let (baseline, _) = validate(CADES_LT, "cades-detached-lt.p7s", Some(DOCUMENT));
    // The rebuilt CMS is the same signature: with no certificate added, the same verdict.
    let (same, _) = validate(&with_certificates(0), "rebuilt.p7s", Some(DOCUMENT));
    assert_eq!(same.conclusion, baseline.conclusion, "{:?} vs {:?}", codes(&same), codes(&baseline));

    let bytes = with_certificates(10_000);
    assert!(bytes.len() > 5_000_000, "{}", bytes.len());
    let (report, took) = validate(&bytes, "many-certificates.p7s", Some(DOCUMENT));
    assert_format_failure(&report, "FORMAT_NOT_SUPPORTED");
    let text = &report.signatures[0].errors[0].en;
    assert!(text.contains("more than 256 elements in one SET (MAX_SET_ELEMENTS)"), "{text} ({took:?})");
    assert_eq!(pkix::cms::SignedData::from_content_info(&bytes).unwrap_err().to_string(), pkix::cms::TOO_MANY_SET_ELEMENTS);

    // At the limit, in the worst order, a verdict within the bound: the same as without the
    // copies, or no chain found when the path builder's budget goes on the copies first.
    let at_limit = with_certificates(pkix::cms::MAX_SET_ELEMENTS);
    let (report, took) = validate(&at_limit, "256-certificates.p7s", Some(DOCUMENT));
    let no_chain = Conclusion::indeterminate(SubIndication::NoCertificateChainFound);
    assert!([baseline.conclusion, no_chain].contains(&report.conclusion), "{:?} ({took:?})", codes(&report));
}

/// `PADES_LT` with an incremental update adding `count` signature fields whose value is a
/// copy of its signature dictionary (the same byte range and CMS): `count` signatures that
/// each look valid, each followed by `count` + 2 changed objects.
fn with_copied_signatures(count: usize) -> Vec<u8> {
    let text = String::from_utf8_lossy(PADES_LT);
    let startxref: usize = text.rsplit("startxref").next().unwrap().split_whitespace().next().unwrap().parse().unwrap();
    let found = read::signatures(PADES_LT).unwrap();
    let signature = &found[0];
    let [a, b, c, d] = signature.byte_range;
    let contents = String::from_utf8(PADES_LT[b + 1..c - 1].to_vec()).unwrap();
    // The highest object number in use, and the catalog's.
    let size: u32 = text.rsplit("/Size").next().unwrap().split(|c: char| !c.is_ascii_digit() && c != ' ').next().unwrap().trim().parse().unwrap();
    let root: u32 = text.rsplit("/Root").next().unwrap().split_whitespace().next().unwrap().parse().unwrap();
    let mut out = PADES_LT.to_vec();
    out.push(b'\n');
    let mut offsets = Vec::new();
    let first = size;
    let mut fields = String::new();
    // One copy of the signature dictionary, which every new field has as its value (a copy
    // per field would make the file 16 KB per field; the reader treats both alike).
    offsets.push((first, out.len()));
    out.extend_from_slice(format!("{first} 0 obj\n<< /Type /Sig /Filter /Adobe.PPKLite /SubFilter /ETSI.CAdES.detached /ByteRange [{a} {b} {c} {d}] /Contents <{contents}> >>\nendobj\n").as_bytes());
    for i in 0..count as u32 {
        let num = first + 1 + i;
        offsets.push((num, out.len()));
        out.extend_from_slice(format!("{num} 0 obj\n<< /FT /Sig /T (Copy{i}) /V {first} 0 R >>\nendobj\n").as_bytes());
        fields.push_str(&format!("{num} 0 R "));
    }
    let catalog_num = first + 1 + count as u32;
    offsets.push((catalog_num, out.len()));
    out.extend_from_slice(format!("{catalog_num} 0 obj\n<< /Type /Catalog /AcroForm << /Fields [{fields}] >> >>\nendobj\n").as_bytes());
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 1\n0000000000 65535 f\r\n{first} {}\n", offsets.len()).as_bytes());
    for (_, offset) in &offsets {
        out.extend_from_slice(format!("{offset:010} 00000 n\r\n").as_bytes());
    }
    let _ = root;
    out.extend_from_slice(format!("trailer\n<< /Size {} /Root {catalog_num} 0 R /Prev {startxref} >>\nstartxref\n{xref}\n%%EOF\n", catalog_num + 1).as_bytes());
    out
}

#[test]
fn a_pdf_with_10000_signature_fields_gets_a_verdict_quickly() {
    let bytes = with_copied_signatures(10_000);
    let started = Instant::now();
    let found = read::signatures(&bytes).unwrap();
    assert_eq!(found.len(), 10_000);
    assert!(started.elapsed() < QUICK, "reading took {:?}", started.elapsed());
    let (report, took) = validate(&bytes, "many-fields.pdf", None);
    assert_eq!(report.signatures.len(), 10_000, "{took:?}");
    // The same verdict for each (validated once), and not a pass.
    assert_ne!(report.conclusion.indication, Indication::TotalPassed);
    assert!(report.signatures.iter().all(|r| r.conclusion == report.signatures[0].conclusion));
    // Each signature lists at most 100 of the 10,002 changes after it, those not allowed first.
    let changes = &report.signatures[0].covers.later_changes;
    assert_eq!(changes.len(), 100);
    assert!(!changes[0].allowed, "{:?}", changes[0]);
}
