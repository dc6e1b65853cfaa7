//! Revocation evidence that is there but not fresh enough is INDETERMINATE / TRY_LATER with
//! when to validate again; no evidence at all is INDETERMINATE /
//! CERTIFICATE_CHAIN_GENERAL_FAILURE (EN 319 102-1 §5.2.5 and §5.2.6; DSS does the same). On
//! the corpus's OpenSSL-made CAdES B-LT (the fuzzing seed), its signature timestamp taken out
//! (an unsigned attribute: the signature stays valid) so that the evidence must speak for the
//! validation time, and its OCSP responses and CRLs (real ones, made by the corpus CA) kept or
//! taken out.
// Test code: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime};

use der::{Decode, Encode};
use esign::validation::report::{Indication, Report};
use esign::validation::{Trust, Validation};

const DOCUMENT: &[u8] = include_bytes!("../../fuzz/seeds/document.txt");
const ROOT: &[u8] = include_bytes!("../../fuzz/seeds/root.pem");
const CADES_LT: &[u8] = include_bytes!("../../fuzz/seeds/cms/cades-detached-lt.p7s");

/// The seed with its unsigned attributes (the signature timestamp) removed, and with its
/// revocation evidence (OCSP responses, CRLs) kept or not.
fn without_timestamp(keep_evidence: bool) -> Vec<u8> {
    let info = cms::content_info::ContentInfo::from_der(CADES_LT).unwrap();
    let mut sd: cms::signed_data::SignedData = info.content.decode_as().unwrap();
    let mut signers = sd.signer_infos.0.into_vec();
    signers[0].unsigned_attrs = None;
    sd.signer_infos = cms::signed_data::SignerInfos(signers.try_into().unwrap());
    if !keep_evidence {
        sd.crls = None;
    }
    let info = cms::content_info::ContentInfo { content_type: info.content_type, content: der::Any::encode_from(&sd).unwrap() };
    info.to_der().unwrap()
}

fn validate(bytes: &[u8], now: SystemTime) -> Report {
    let policies = policies::Policies::shipped().unwrap();
    let (_, root) = der::pem::decode_vec(ROOT).unwrap();
    let trust = Trust::new(policies.trust_list(), None, &[root]).unwrap();
    let validation = Validation { policy: policies.default_validation_policy(), policies: &policies, trust: &trust, now, online: None };
    esign::validation::validate(bytes, "signature.p7s", Some(DOCUMENT), &validation)
}

fn time(rfc3339: &str) -> SystemTime {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339).unwrap().into()
}

fn rfc3339(t: SystemTime) -> String {
    time::OffsetDateTime::from(t).format(&time::format_description::well_known::Rfc3339).unwrap()
}

fn x509_block(report: &Report) -> &esign::validation::report::BlockResult {
    let s = &report.signatures[0];
    s.blocks.iter().find(|b| b.block == "x509-certificate-validation").unwrap_or_else(|| panic!("{report:?}"))
}

#[test]
fn stale_evidence_is_try_later_with_when_and_none_is_a_chain_failure() {
    // The evidence about the signing certificate (the corpus CA's CRL), as the seed (with its
    // timestamp) reports it.
    let original = validate(CADES_LT, SystemTime::now());
    let signer = original.signatures[0].chain[0].subject.clone();
    let evidence = original.signatures[0].revocation.iter().find(|r| r.certificate == signer).unwrap_or_else(|| panic!("{original:?}"));
    let this_update = time(&evidence.this_update);
    let next_update = evidence.next_update.as_deref().map(time);
    let freshness = Duration::from_secs(policies::Policies::shipped().unwrap().default_validation_policy().revocation_freshness);
    let stripped = without_timestamp(true);

    // Validated an hour after it was issued: fresh, the path passes.
    let fresh = validate(&stripped, this_update + Duration::from_secs(3600));
    assert!(x509_block(&fresh).conclusion.passed(), "{fresh:?}");
    assert_eq!(fresh.signatures[0].best_signature_time.proof, "validation-time");
    assert_eq!(fresh.signatures[0].retry_after, None);

    // Validated later than the policy's freshness allows: the evidence is there but stale.
    let later = this_update + freshness + Duration::from_secs(3600);
    let stale = validate(&stripped, later);
    let s = &stale.signatures[0];
    assert_eq!(stale.conclusion.indication, Indication::Indeterminate, "{stale:?}");
    assert_eq!(s.conclusion.sub_indication.map(|x| x.as_str()), Some("TRY_LATER"), "{stale:?}");
    assert_eq!(x509_block(&stale).conclusion.sub_indication.map(|x| x.as_str()), Some("TRY_LATER"));
    // Fresher evidence should exist from its nextUpdate on (or from the validation time, had that passed).
    let expected = rfc3339(next_update.map_or(later, |n| n.max(later)));
    assert_eq!(s.retry_after.as_deref(), Some(expected.as_str()), "{stale:?}");
    let error = s.errors.iter().find(|e| e.code == "REVOCATION_NOT_FRESH").unwrap_or_else(|| panic!("{stale:?}"));
    assert!(error.en.contains("not fresh enough") && error.en.contains(&expected), "{}", error.en);
    assert!(error.ar.contains("غير حديثة") && error.ar.contains(&expected), "{}", error.ar);
    // The stale evidence is reported, as such.
    assert!(s.revocation.iter().any(|r| r.certificate == signer && r.status == "not-fresh" && r.this_update == evidence.this_update), "{:?}", s.revocation);
    // The same in every form of the report.
    let json = serde_json::to_value(&stale).unwrap();
    assert_eq!(json["signatures"][0]["retry_after"], expected.as_str());
    assert_eq!(json["signatures"][0]["sub_indication"], "TRY_LATER");
    let xml = esign::validation::xml::to_xml(&stale);
    assert!(xml.contains("urn:etsi:019102:subindication:TRY_LATER"), "{xml}");
    assert!(xml.contains("retry-after") && xml.contains(&expected), "{xml}");
    assert!(xml.contains("REVOCATION_NOT_FRESH"), "{xml}");
    let en = esign::validation::html::to_html(&stale, esign::validation::html::Lang::En);
    assert!(en.contains("validate again after") && en.contains(&expected) && en.contains("not fresh enough"), "{en}");
    let ar = esign::validation::html::to_html(&stale, esign::validation::html::Lang::Ar);
    assert!(ar.contains("أعد التحقق بعد") && ar.contains(&expected) && ar.contains("غير حديثة بما يكفي"), "{ar}");

    // No evidence at all, at the time the evidence was fresh: not "try later".
    let none = validate(&without_timestamp(false), this_update + Duration::from_secs(3600));
    let s = &none.signatures[0];
    assert_eq!(none.conclusion.indication, Indication::Indeterminate, "{none:?}");
    assert_eq!(s.conclusion.sub_indication.map(|x| x.as_str()), Some("CERTIFICATE_CHAIN_GENERAL_FAILURE"), "{none:?}");
    assert_eq!(s.retry_after, None);
    assert!(s.errors.iter().all(|e| e.code != "REVOCATION_NOT_FRESH"), "{:?}", s.errors);
}
