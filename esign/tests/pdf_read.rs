//! Reading a PDF's signatures for validation (`esign::pdf::read`): every signature and
//! document timestamp, the soundness of its byte range, what later updates changed and
//! whether that is allowed, and the /DSS. The signatures here are placeholders (a DER
//! SEQUENCE): what is read is the PDF structure, not the CMS.
// Test code: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use esign::pdf::read::{self, ByteRangeProblem, FoundKind};
use esign::pdf::{self, PrepareOptions, SignatureDetails};

fn original() -> Vec<u8> {
    let content = b"BT /F1 24 Tf 40 40 Td (Hawiya) Tj ET";
    pdf::write_document(&[
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 100] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>".to_vec(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_vec(),
        [format!("<< /Length {} >>\nstream\n", content.len()).as_bytes(), content, b"\nendstream"].concat(),
    ])
}

/// A placeholder "CMS": a DER SEQUENCE of `n` octets of `fill`.
fn der(n: usize, fill: u8) -> Vec<u8> {
    let mut out = vec![0x30, 0x82, (n >> 8) as u8, n as u8];
    out.extend(std::iter::repeat_n(fill, n));
    out
}

fn sign(pdf: &[u8], fill: u8) -> Vec<u8> {
    let details = SignatureDetails {
        signing_time: time::OffsetDateTime::from_unix_timestamp(1_796_000_000).unwrap(),
        name: Some("\u{633}\u{627}\u{645}\u{64a}".into()),
        reason: Some("approval".into()),
        location: None,
    };
    pdf::prepare(pdf, &PrepareOptions::signature(details)).unwrap().finish(&der(300, fill)).unwrap()
}

/// Appends an incremental update that rewrites (or adds) the objects given, with a classic
/// xref section.
fn update(pdf: &[u8], objects: &[(u32, &[u8])]) -> Vec<u8> {
    let startxref = {
        let tail = String::from_utf8_lossy(&pdf[pdf.len() - 64..]).into_owned();
        tail.split("startxref").nth(1).unwrap().split_whitespace().next().unwrap().parse::<usize>().unwrap()
    };
    let size = objects.iter().map(|(n, _)| n + 1).max().unwrap().max(64);
    let mut out = pdf.to_vec();
    out.push(b'\n');
    let mut xref = String::from("xref\n");
    for (num, body) in objects {
        let offset = out.len();
        out.extend_from_slice(format!("{num} 0 obj\n").as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\nendobj\n");
        xref.push_str(&format!("{num} 1\n{offset:010} 00000 n\r\n"));
    }
    let at = out.len();
    out.extend_from_slice(xref.as_bytes());
    out.extend_from_slice(format!("trailer\n<< /Size {size} /Root 1 0 R /Prev {startxref} >>\nstartxref\n{at}\n%%EOF\n").as_bytes());
    out
}

#[test]
fn signatures_and_document_timestamps_are_found_in_order() {
    let once = sign(&original(), 0x11);
    let twice = sign(&once, 0x22);
    let stamped = pdf::prepare(&twice, &PrepareOptions::document_timestamp()).unwrap().finish(&der(200, 0x33)).unwrap();
    let found = read::signatures(&stamped).unwrap();
    assert_eq!(found.len(), 3);
    assert_eq!(found.iter().map(|s| s.kind).collect::<Vec<_>>(), [FoundKind::Signature, FoundKind::Signature, FoundKind::DocumentTimestamp]);
    assert_eq!((found[0].field.as_str(), found[1].field.as_str()), ("Signature1", "Signature2"));
    assert_eq!(found[0].sub_filter, "ETSI.CAdES.detached");
    assert_eq!(found[2].sub_filter, "ETSI.RFC3161");
    // The padding after the DER is not part of it.
    assert_eq!((found[0].contents.clone(), found[2].contents.len()), (der(300, 0x11), 204));
    assert_eq!(found[0].name.as_deref(), Some("\u{633}\u{627}\u{645}\u{64a}"));
    assert!(found[0].signing_time.as_deref().is_some_and(|m| m.starts_with("D:2026")), "{:?}", found[0].signing_time);
    // Each covers its own revision; the last covers the whole file.
    assert_eq!((found[0].signed_end(), found[1].signed_end(), found[2].signed_end()), (once.len(), twice.len(), stamped.len()));
    for s in &found {
        let [first, second] = read::signed_parts(&stamped, s).unwrap();
        assert_eq!(first.len() + second.len() + (s.byte_range[2] - s.byte_range[1]), s.signed_end());
    }
    assert!(read::signatures(&original()).unwrap().is_empty());
}

#[test]
fn later_signatures_timestamps_and_dss_are_allowed_changes() {
    let once = sign(&original(), 0x11);
    let first = read::signatures(&once).unwrap().remove(0);
    assert!(read::changes_after(&once, &first, None).unwrap().is_empty());
    let twice = sign(&once, 0x22);
    let with_dss = pdf::add_dss(twice.clone(), &[der(40, 1)], &[der(50, 2)], &[]).unwrap();
    let stamped = pdf::prepare(&with_dss, &PrepareOptions::document_timestamp()).unwrap().finish(&der(200, 0x33)).unwrap();
    let changes = read::changes_after(&stamped, &first, None).unwrap();
    assert!(!changes.is_empty());
    assert!(changes.iter().all(|c| c.allowed), "{changes:?}");
    let kinds: Vec<_> = changes.iter().map(|c| c.kind).collect();
    for kind in ["signature", "document-timestamp", "dss", "catalog"] {
        assert!(kinds.contains(&kind), "{kind} not in {kinds:?}");
    }
    // After a certification signature that allows no changes, a second signature is not allowed.
    let changes = read::changes_after(&twice, &first, Some(1)).unwrap();
    assert!(changes.iter().any(|c| c.kind == "signature" && !c.allowed), "{changes:?}");

    let store = read::security_store(&with_dss).unwrap();
    assert_eq!((store.certificates, store.ocsp_responses, store.crls.len()), (vec![der(40, 1)], vec![der(50, 2)], 0));
    assert_eq!(read::security_store(&once).unwrap(), read::SecurityStore::default());
}

#[test]
fn changed_page_content_after_signing_is_not_allowed() {
    let once = sign(&original(), 0x11);
    let first = read::signatures(&once).unwrap().remove(0);
    // The content stream rewritten: same dictionary, other text.
    let changed = update(&once, &[(5, b"<< /Length 36 >>\nstream\nBT /F1 24 Tf 40 40 Td (Forged) Tj ET\nendstream")]);
    let changes = read::changes_after(&changed, &first, None).unwrap();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!((changes[0].object.as_str(), changes[0].allowed), ("5 0 R", false));
    // The page pointed at other content.
    let changed = update(&once, &[(3, b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 500 100] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>")]);
    let changes = read::changes_after(&changed, &first, None).unwrap();
    assert!(changes.iter().any(|c| c.kind == "page-content" && !c.allowed), "{changes:?}");
    // An object written again unchanged is no change.
    let same = update(&once, &[(4, b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")]);
    assert!(read::changes_after(&same, &first, None).unwrap().is_empty());
    // A new annotation on the page: allowed without certification (P 3), not under P 2.
    let annotated = update(
        &once,
        &[
            (3, b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 100] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R /Annots [20 0 R] >>"),
            (20, b"<< /Type /Annot /Subtype /Text /Rect [0 0 10 10] /Contents (note) >>"),
        ],
    );
    let page_annots = |p: Option<u8>| read::changes_after(&annotated, &first, p).unwrap().iter().map(|c| (c.kind, c.allowed)).collect::<Vec<_>>();
    assert!(page_annots(None).contains(&("annotation", true)), "{:?}", page_annots(None));
    assert!(page_annots(Some(2)).contains(&("annotation", false)), "{:?}", page_annots(Some(2)));
}

#[test]
fn unsound_byte_ranges_are_named() {
    let once = sign(&original(), 0x11);
    let good = read::signatures(&once).unwrap().remove(0);
    let with = |range: [usize; 4]| read::FoundSignature { byte_range: range, ..good.clone() };
    let [a, b, c, d] = good.byte_range;
    assert!(read::signed_parts(&once, &good).is_ok());
    assert_eq!(read::signed_parts(&once, &with([1, b, c, d])), Err(ByteRangeProblem::NotFromStart));
    assert_eq!(read::signed_parts(&once, &with([a, b, c, d + 1])), Err(ByteRangeProblem::PastEnd));
    assert_eq!(read::signed_parts(&once, &with([a, c + 1, c, d])), Err(ByteRangeProblem::Overlap));
    // A gap that leaves out more than the signature value (here: two bytes before it).
    assert_eq!(read::signed_parts(&once, &with([a, b - 2, c, d])), Err(ByteRangeProblem::GapNotContents));
    // A /Contents that is not what the gap holds.
    let other = read::FoundSignature { contents: der(300, 0x12), ..good.clone() };
    assert_eq!(read::signed_parts(&once, &other), Err(ByteRangeProblem::GapNotContents));
}

#[test]
fn garbage_and_truncations_are_errors_never_panics() {
    let once = sign(&sign(&original(), 0x11), 0x22);
    for cut in (0..once.len()).step_by(97) {
        let _ = read::signatures(&once[..cut]);
        let _ = read::security_store(&once[..cut]);
    }
    let found = read::signatures(&once).unwrap();
    for cut in (found[0].signed_end()..once.len()).step_by(53) {
        let _ = read::changes_after(&once[..cut], &found[0], None);
    }
    assert!(read::signatures(b"not a pdf").is_err());
}
