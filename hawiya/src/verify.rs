//! `hawiya verify`: an auditor's verdict on a signed document (ETSI EN 319 102-1), on the
//! command line. The exit status is the verdict: 0 TOTAL-PASSED, 1 TOTAL-FAILED,
//! 2 INDETERMINATE, 3 a usage error (a file that cannot be read or is larger than
//! [`MAX_INPUT_BYTES`], an unknown policy).

use std::path::PathBuf;
use std::time::SystemTime;

use clap::{Args, ValueEnum};
use esign::validation::report::{Indication, Report};
use esign::validation::{OwnHierarchy, Trust, Validation};

/// The report's form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A short verdict and the details, for people.
    Text,
    /// The JSON report.
    Json,
}

/// The language of the text report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    /// Arabic.
    Ar,
    /// English.
    En,
}

/// `hawiya verify`'s arguments.
#[derive(Args)]
pub struct VerifyArgs {
    /// The signed file: a PDF, a CAdES signature (`.p7s`), or an RFC 3161 token (`.tsr`/`.tst`).
    file: PathBuf,
    /// The document a detached signature or a timestamp token is over.
    #[arg(long)]
    detached: Option<PathBuf>,
    /// The validation policy (`validation/<id>.toml`); the policy files' default otherwise.
    #[arg(long)]
    policy: Option<String>,
    /// A policy directory instead of the shipped policy files.
    #[arg(long)]
    policies: Option<PathBuf>,
    /// A data directory whose own CA hierarchy is trusted when the trust list says so (its
    /// root, its Citizen Signing CA issuing qualified certificates).
    #[arg(long)]
    data: Option<PathBuf>,
    /// A further trust anchor (PEM), for this validation only; repeatable.
    #[arg(long)]
    trust: Vec<PathBuf>,
    /// The report's form.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// The language of the text report.
    #[arg(long, value_enum, default_value = "ar")]
    lang: Lang,
}

/// The largest file (signed file, detached document, trust anchor) `hawiya verify` reads:
/// the PDF reader holds a whole file in memory, so a bigger one is refused before it is read.
pub const MAX_INPUT_BYTES: u64 = 256 * 1024 * 1024;

/// Reads `path`, refusing a file larger than `limit` without reading it (and stopping at the
/// limit for one that grows while it is read, or a device that never ends).
fn read_limited(path: &std::path::Path, limit: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let too_large = |size: u64| format!("{}: {size} bytes is more than the limit of {limit} bytes (MAX_INPUT_BYTES)", path.display());
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let size = file.metadata().map_err(|e| format!("{}: {e}", path.display()))?.len();
    if size > limit {
        return Err(too_large(size));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(limit + 1).read_to_end(&mut bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() as u64 > limit {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, String> {
    read_limited(path, MAX_INPUT_BYTES)
}

fn pem_certificates(path: &std::path::Path) -> Result<Vec<Vec<u8>>, String> {
    let text = String::from_utf8(read(path)?).map_err(|_| format!("{}: not a PEM file", path.display()))?;
    let mut out = Vec::new();
    for block in text.split("-----END CERTIFICATE-----").filter(|b| b.contains("-----BEGIN CERTIFICATE-----")) {
        let pem = format!("{}-----END CERTIFICATE-----\n", block.trim_start());
        let (_, der) = der::pem::decode_vec(pem.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))?;
        out.push(der);
    }
    if out.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    Ok(out)
}

/// The deployment's own anchors and qualified CAs, from its ceremony record (certificates
/// only: no key is opened, so no operator secret is needed).
async fn own_hierarchy(data: &std::path::Path) -> Result<OwnHierarchy, String> {
    use der::Decode;
    let dir = crate::config::DataDir::open(data).map_err(|e| e.to_string())?;
    let store = dir.store().await.map_err(|e| e.to_string())?;
    let ceremony = store.ceremony().await.map_err(|e| e.to_string())?.ok_or_else(|| format!("{}: no CA hierarchy in this data directory", data.display()))?;
    let certificate = |name: &str| -> Result<Vec<u8>, String> {
        let a = ceremony.authorities.iter().find(|a| a.name == name).ok_or_else(|| format!("the ceremony has no {name}"))?;
        hex::decode(&a.certificate).map_err(|e| format!("the ceremony's {name}: {e}"))
    };
    let (root, signing) = (certificate(ca::names::ROOT)?, certificate(ca::names::CITIZEN_SIGNING)?);
    let since = x509_cert::Certificate::from_der(&signing).map_err(|e| e.to_string())?.tbs_certificate.validity.not_before.to_system_time();
    Ok(OwnHierarchy { anchors: vec![root], qualified: vec![(signing, since)] })
}

/// Runs `hawiya verify`; returns the exit status.
pub async fn run(args: VerifyArgs) -> Result<u8, String> {
    let policies = match &args.policies {
        Some(dir) => policies::Policies::load(dir).map_err(|e| e.to_string())?,
        None => policies::Policies::shipped().map_err(|e| e.to_string())?,
    };
    let policy = match &args.policy {
        Some(id) => policies.validation_policy(id).ok_or_else(|| {
            let known: Vec<_> = policies.validation_policies().iter().map(|p| p.id.as_str()).collect();
            format!("no validation policy {id:?} (known: {})", known.join(", "))
        })?,
        None => policies.default_validation_policy(),
    };
    let bytes = read(&args.file)?;
    let detached = args.detached.as_deref().map(read).transpose()?;
    let own = match &args.data {
        Some(data) => Some(own_hierarchy(data).await?),
        None => None,
    };
    let mut extra = Vec::new();
    for path in &args.trust {
        extra.extend(pem_certificates(path)?);
    }
    let trust = Trust::new(policies.trust_list(), own.as_ref(), &extra).map_err(|e| e.to_string())?;
    let name = args.file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let validation = Validation { policy, policies: &policies, trust: &trust, now: SystemTime::now() };
    let report = esign::validation::validate(&bytes, &name, detached.as_deref(), &validation);
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?),
        Format::Text => print!("{}", text(&report, args.lang)),
    }
    Ok(report.exit_code())
}

/// The text report: the verdict first, then one paragraph per signature.
fn text(report: &Report, lang: Lang) -> String {
    let ar = lang == Lang::Ar;
    let verdict = |i: Indication| match (i, ar) {
        (Indication::TotalPassed, true) => "صالح (TOTAL-PASSED)",
        (Indication::TotalFailed, true) => "غير صالح (TOTAL-FAILED)",
        (Indication::Indeterminate, true) => "غير محسوم (INDETERMINATE)",
        (i, false) => i.as_str(),
    };
    let sub = |c: &esign::validation::report::Conclusion| c.sub_indication.map(|s| format!(" / {}", s.as_str())).unwrap_or_default();
    let mut out = String::new();
    out.push_str(&format!("{}{} — {}\n", verdict(report.conclusion.indication), sub(&report.conclusion), report.document.name));
    out.push_str(&if ar {
        format!("السياسة: {} (الإصدار {}) · التواقيع: {}\n", report.policy.id, report.policy.revision, report.counts.signatures)
    } else {
        format!("policy: {} (revision {}) · signatures: {}\n", report.policy.id, report.policy.revision, report.counts.signatures)
    });
    for s in &report.signatures {
        out.push_str(&format!("\n{}: {}{} · {} · {}\n", s.id, verdict(s.conclusion.indication), sub(&s.conclusion), s.format, s.qualification));
        if let Some(signer) = &s.signer {
            let name = signer.name_ar.as_deref().or(signer.name_latin.as_deref()).unwrap_or("-");
            let id = signer.national_id.as_deref().unwrap_or("-");
            out.push_str(&if ar {
                format!("  الموقّع: {name} (الرقم الوطني {id})\n")
            } else {
                format!("  signer: {name} (national id {id})\n")
            });
        }
        let t = &s.best_signature_time;
        out.push_str(&if ar {
            format!("  وقت التوقيع: {} (الإثبات: {})\n", t.time, t.proof)
        } else {
            format!("  signed by: {} (proved by: {})\n", t.time, t.proof)
        });
        for e in &s.errors {
            out.push_str(&format!("  {} {}: {}\n", if ar { "خطأ" } else { "error" }, e.code, if ar { &e.ar } else { &e.en }));
            if ar && !e.en.is_empty() && e.en != e.ar {
                out.push_str(&format!("    ({})\n", e.en));
            }
        }
        for w in &s.warnings {
            out.push_str(&format!("  {} {}: {}\n", if ar { "تنبيه" } else { "warning" }, w.code, if ar { &w.ar } else { &w.en }));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    // Test code: a failed expectation is the test failing.
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn a_file_over_the_limit_is_refused_naming_the_limit_and_one_at_it_is_read() {
        let path = std::env::temp_dir().join(format!("hawiya-verify-limit-{}", std::process::id()));
        std::fs::write(&path, [7u8; 100]).unwrap();
        let (at, over) = (read_limited(&path, 100), read_limited(&path, 99));
        std::fs::remove_file(&path).unwrap();
        assert_eq!(at.unwrap(), vec![7u8; 100]);
        let error = over.unwrap_err();
        assert!(error.contains("100 bytes is more than the limit of 99 bytes (MAX_INPUT_BYTES)"), "{error}");
    }

    #[test]
    fn a_device_that_never_ends_is_cut_at_the_limit() {
        let error = read_limited(std::path::Path::new("/dev/zero"), 4096).unwrap_err();
        assert!(error.contains("4097 bytes is more than the limit of 4096 bytes"), "{error}");
    }
}
