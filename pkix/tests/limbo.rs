//! The x509-limbo suite (C2SP) run against `pkix::path`: every case, results written to
//! `target/test-artefacts/limbo-results.txt`. No case the suite says must fail may be
//! accepted, and at least 147 cases (the Python `cryptography` verifier's score) must agree.
//!
//! The suite lives outside the repository, in `/work/shared/testdata/x509-limbo/limbo.json`
//! (`../shared/…` from the workspace root); `LIMBO_JSON` names another copy. Without it the
//! test fails and says where it looked.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use der::Decode;
use pkix::path::{self, PathOptions, PeerName, Revocation, RevocationError, RevocationStatus, TrustAnchors};
use serde_json::Value;
use x509_cert::Certificate;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{KeyUsages, SubjectAltName};

/// The Python `cryptography` verifier's agreeing cases on this file.
const CRYPTOGRAPHY_SCORE: usize = 147;

/// Features of the suite this validator does not implement, and why the cases are skipped.
const UNSUPPORTED: &[(&str, &str)] =
    &[("pedantic-public-suffix-wildcard", "wildcards on public suffixes need the Public Suffix List, which pkix does not carry")];

fn suite_path() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut candidates: Vec<PathBuf> = std::env::var_os("LIMBO_JSON").map(PathBuf::from).into_iter().collect();
    candidates.push(PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/testdata/x509-limbo/limbo.json")));
    // A git worktree at /work/wt/NAME sits one level deeper than the main checkout.
    candidates.push(manifest.join("../../../shared/testdata/x509-limbo/limbo.json"));
    match candidates.iter().find(|p| p.is_file()) {
        Some(found) => found.clone(),
        None => panic!("the x509-limbo suite is missing: looked for limbo.json at {candidates:?} (set LIMBO_JSON to its path)"),
    }
}

fn pem_to_der(pem: &str) -> Vec<u8> {
    let (_, der) = der::pem::decode_vec(pem.as_bytes()).unwrap_or_else(|e| panic!("PEM in the suite does not decode: {e}"));
    der
}

fn pems(value: &Value) -> Vec<Vec<u8>> {
    value.as_array().map(|a| a.iter().filter_map(Value::as_str).map(pem_to_der).collect()).unwrap_or_default()
}

/// RFC 3339 `YYYY-MM-DDTHH:MM:SS[.fff]+00:00` to a time, the fraction kept.
fn parse_time(text: &str) -> SystemTime {
    let num = |s: &str| s.parse::<i64>().unwrap_or_else(|_| panic!("bad time {text}"));
    let (date, rest) = text.split_once('T').unwrap_or_else(|| panic!("bad time {text}"));
    let (y, m, d) = {
        let p: Vec<&str> = date.split('-').collect();
        (num(p[0]), num(p[1]), num(p[2]))
    };
    let (clock, offset) = match rest.find(['+', 'Z']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    assert!(offset == "+00:00" || offset == "Z" || offset.is_empty(), "time offset in {text}");
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
    let t: Vec<i64> = hms.split(':').map(num).collect();
    // Days from civil (Howard Hinnant's algorithm).
    let (y2, m2) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * m2 + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let secs = days * 86400 + t[0] * 3600 + t[1] * 60 + t[2];
    let nanos = if frac.is_empty() { 0 } else { format!("{frac:0<9}")[..9].parse::<u32>().unwrap_or(0) };
    UNIX_EPOCH + Duration::new(u64::try_from(secs).unwrap_or(0), nanos)
}

fn key_usage(name: &str) -> KeyUsages {
    match name {
        "digitalSignature" => KeyUsages::DigitalSignature,
        "contentCommitment" | "nonRepudiation" => KeyUsages::NonRepudiation,
        "keyEncipherment" => KeyUsages::KeyEncipherment,
        "dataEncipherment" => KeyUsages::DataEncipherment,
        "keyAgreement" => KeyUsages::KeyAgreement,
        "keyCertSign" => KeyUsages::KeyCertSign,
        "cRLSign" => KeyUsages::CRLSign,
        "encipherOnly" => KeyUsages::EncipherOnly,
        "decipherOnly" => KeyUsages::DecipherOnly,
        other => panic!("unknown key usage {other} in the suite"),
    }
}

fn eku(name: &str) -> der::asn1::ObjectIdentifier {
    match name {
        "serverAuth" => path::SERVER_AUTH,
        "clientAuth" => path::CLIENT_AUTH,
        other => der::asn1::ObjectIdentifier::new(other).unwrap_or_else(|_| panic!("unknown extended key usage {other} in the suite")),
    }
}

/// The CRLs of a case as a revocation source.
#[derive(Debug)]
struct Crls(Vec<pkix::path::Crl>);

impl Revocation for Crls {
    fn status(&self, certificate: &Certificate, issuer: &Certificate, time: SystemTime) -> Result<RevocationStatus, RevocationError> {
        pkix::path::Crl::status_among(&self.0, certificate, issuer, time, &pkix::path::AlgorithmPolicy::default())
    }
}

enum Outcome {
    Success,
    Failure(String),
    Skipped(String),
}

fn run_case(case: &Value, common_name_rule: bool) -> Outcome {
    let features: Vec<&str> = case["features"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    if let Some((feature, why)) = UNSUPPORTED.iter().find(|(f, _)| features.contains(f)) {
        return Outcome::Skipped(format!("feature {feature}: {why}"));
    }
    let anchors = match TrustAnchors::from_der(&pems(&case["trusted_certs"])) {
        Ok(anchors) => anchors,
        Err(e) => return Outcome::Failure(e.to_string()),
    };
    let intermediates = pems(&case["untrusted_intermediates"]);
    let leaf = pem_to_der(case["peer_certificate"].as_str().unwrap_or_default());
    let time = case["validation_time"].as_str().map(parse_time).unwrap_or_else(SystemTime::now);
    let mut options = PathOptions::at(time);
    let server = case["validation_kind"] == "SERVER";
    options.web_pki_server = server;
    options.web_pki_common_name = common_name_rule;
    let ekus: Vec<&str> = case["extended_key_usage"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    options.required_eku = Some(match ekus.first() {
        Some(name) => eku(name),
        None if server => path::SERVER_AUTH,
        None => path::CLIENT_AUTH,
    });
    options.required_key_usage = case["key_usage"].as_array().map(|a| a.iter().filter_map(Value::as_str).map(key_usage).collect()).unwrap_or_default();
    if let Some(depth) = case["max_chain_depth"].as_u64() {
        options.max_intermediates = depth as usize;
    }
    let crls = case["crls"].as_array().map(|a| a.iter().filter_map(Value::as_str).map(pem_to_der).collect::<Vec<_>>()).unwrap_or_default();
    let source = if crls.is_empty() {
        None
    } else {
        match crls.iter().map(|der| pkix::path::Crl::from_der(der)).collect::<Result<Vec<_>, _>>() {
            Ok(list) => Some(Crls(list)),
            Err(e) => return Outcome::Failure(format!("CRL: {e}")),
        }
    };
    if source.is_some() {
        options.require_revocation_status = true;
    }
    let validated = match path::validate(&leaf, &intermediates, &anchors, &options, source.as_ref().map(|s| s as &dyn Revocation)) {
        Ok(validated) => validated,
        Err(e) => return Outcome::Failure(format!("{e} [{:?}]", e.sub_indication())),
    };
    if let Some(peer) = case["expected_peer_name"].as_object() {
        let value = peer["value"].as_str().unwrap_or_default();
        let peer = match peer["kind"].as_str() {
            Some("DNS") => PeerName::Dns(value.to_string()),
            Some("IP") => match value.parse::<IpAddr>() {
                Ok(ip) => PeerName::Ip(ip),
                Err(_) => return Outcome::Failure(format!("peer IP {value} does not parse")),
            },
            other => return Outcome::Skipped(format!("peer name kind {other:?} is not checked")),
        };
        if let Err(e) = path::check_peer_name(&validated, &peer) {
            return Outcome::Failure(e.to_string());
        }
    }
    for name in case["expected_peer_names"].as_array().into_iter().flatten() {
        let value = name["value"].as_str().unwrap_or_default();
        if name["kind"] != "RFC822" {
            return Outcome::Skipped(format!("peer name kind {} is not checked", name["kind"]));
        }
        let sans = validated.certificates[0]
            .tbs_certificate
            .extensions
            .iter()
            .flatten()
            .filter(|e| e.extn_id == der::asn1::ObjectIdentifier::new_unwrap("2.5.29.17"))
            .filter_map(|e| SubjectAltName::from_der(e.extn_value.as_bytes()).ok())
            .flat_map(|s| s.0)
            .collect::<Vec<_>>();
        if !sans.iter().any(|s| matches!(s, GeneralName::Rfc822Name(m) if m.as_str() == value)) {
            return Outcome::Failure(format!("no rfc822Name {value} in the end-entity certificate"));
        }
    }
    Outcome::Success
}

#[test]
fn x509_limbo() {
    let suite = suite_path();
    let text = std::fs::read_to_string(&suite).unwrap_or_else(|e| panic!("reading {}: {e}", suite.display()));
    let suite_json: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", suite.display()));
    let cases = suite_json["testcases"].as_array().unwrap_or_else(|| panic!("{} has no testcases", suite.display()));
    let (mut agree, mut disagree, mut skipped) = (0, 0, 0);
    let mut accepted_bad = Vec::new();
    let mut report = String::new();
    for case in cases {
        let id = case["id"].as_str().unwrap_or("?");
        let expected_success = case["expected_result"] == "SUCCESS";
        let started = std::time::Instant::now();
        let outcome = run_case(case, true);
        let elapsed = started.elapsed();
        // The CA/B Forum common-name rule decides some cases on its own; run them again
        // without it, so that the file shows the name constraint and name matching verdicts
        // underneath, and so that those are checked too.
        let mut underneath = String::new();
        if let Outcome::Failure(why) = &outcome
            && why.contains("common name")
        {
            underneath = match run_case(case, false) {
                Outcome::Success if !expected_success && !id.starts_with("webpki::cn::") => {
                    accepted_bad.push(format!("{id} (without the common-name rule)"));
                    " — without the common-name rule: SUCCESS, WRONGLY".to_string()
                }
                Outcome::Success => " — without the common-name rule: SUCCESS".to_string(),
                Outcome::Failure(why) => format!(" — without the common-name rule: FAILURE ({why})"),
                Outcome::Skipped(why) => format!(" — without the common-name rule: SKIPPED ({why})"),
            };
        }
        assert!(elapsed < Duration::from_secs(20), "{id} took {elapsed:?}");
        let line = match &outcome {
            Outcome::Skipped(why) => {
                skipped += 1;
                format!("{id} SKIPPED ({why})")
            }
            Outcome::Success if expected_success => {
                agree += 1;
                format!("{id} SUCCESS")
            }
            Outcome::Failure(why) if !expected_success => {
                agree += 1;
                format!("{id} FAILURE ({why})")
            }
            Outcome::Success => {
                disagree += 1;
                accepted_bad.push(id.to_string());
                format!("{id} SUCCESS — DISAGREES: the suite expects FAILURE")
            }
            Outcome::Failure(why) => {
                disagree += 1;
                format!("{id} FAILURE — DISAGREES: the suite expects SUCCESS; refused because {why}")
            }
        };
        let _ = writeln!(report, "{line}{underneath}");
    }
    let summary = format!("x509-limbo: {agree} agree, {disagree} disagree, {skipped} skipped of {} cases", cases.len());
    let header = format!("# {summary}\n# suite: {}\n# skipped features: {UNSUPPORTED:?}\n", suite.display());
    let artefacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-artefacts");
    std::fs::create_dir_all(&artefacts).unwrap_or_else(|e| panic!("creating {}: {e}", artefacts.display()));
    let out = artefacts.join("limbo-results.txt");
    std::fs::write(&out, format!("{header}{report}")).unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
    println!("{summary} (details in {})", out.display());
    assert!(accepted_bad.is_empty(), "accepted cases the suite says must fail: {accepted_bad:?}");
    assert!(agree >= CRYPTOGRAPHY_SCORE, "{summary}: fewer than the {CRYPTOGRAPHY_SCORE} of Python cryptography");
}
