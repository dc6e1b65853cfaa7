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
    /// The ETSI TS 119 102-2 XML validation report.
    Xml,
    /// A printable HTML page (`--lang`), the verdict first.
    Html,
}

/// The language of the text and HTML reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    /// Arabic.
    Ar,
    /// English.
    En,
}

impl From<Lang> for esign::validation::html::Lang {
    fn from(lang: Lang) -> Self {
        match lang {
            Lang::Ar => esign::validation::html::Lang::Ar,
            Lang::En => esign::validation::html::Lang::En,
        }
    }
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
    /// Fetch revocation evidence the document lacks from the OCSP responders and CRL
    /// distribution points its certificates name (otherwise only what it embeds counts,
    /// unless the policy says `online_revocation`).
    #[arg(long)]
    online: bool,
    /// The report's form.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// The language of the text and HTML reports.
    #[arg(long, value_enum, default_value = "ar")]
    lang: Lang,
    /// Sign the report with the validation service's key (the `--data` directory's
    /// `validation-service`, certified by its Services CA): the JSON report becomes a JWS in
    /// compact serialization with the chain in `x5c`; the XML report is written to `--out`
    /// with a detached CAdES B-LT signature beside it (`<out>.p7s`).
    #[arg(long, requires = "data")]
    signed: bool,
    /// Write the report to this file instead of standard output (a signed XML report needs
    /// it: its signature goes to `<out>.p7s`).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The largest file (signed file, detached document, trust anchor) `hawiya verify` reads,
/// refused before it is read. A PDF and a detached document are read by offset and hashed in
/// chunks, never held whole (the memory a validation takes does not grow with them); a CMS
/// signature, a timestamp token and a trust anchor are read whole, so the limit bounds them.
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

/// A file to validate: a regular file, read by offset where it lies; anything else (a pipe,
/// a device) read into memory up to the limit, since it cannot be read by offset.
enum Input {
    File(std::fs::File),
    Memory(Vec<u8>),
}

impl Input {
    fn source(&self) -> &dyn esign::source::Source {
        match self {
            Input::File(file) => file,
            Input::Memory(bytes) => bytes,
        }
    }
}

/// Opens `path` to be validated, refusing a file larger than `limit` without reading it.
fn open_limited(path: &std::path::Path, limit: u64) -> Result<Input, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let metadata = file.metadata().map_err(|e| format!("{}: {e}", path.display()))?;
    if !metadata.is_file() {
        return read_limited(path, limit).map(Input::Memory);
    }
    if metadata.len() > limit {
        return Err(format!("{}: {} bytes is more than the limit of {limit} bytes (MAX_INPUT_BYTES)", path.display(), metadata.len()));
    }
    Ok(Input::File(file))
}

pub(crate) fn pem_certificates(path: &std::path::Path) -> Result<Vec<Vec<u8>>, String> {
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
    let dir = crate::config::DataDir::open(data).map_err(|e| e.to_string())?;
    let store = dir.store().await.map_err(|e| e.to_string())?;
    let ceremony = store.ceremony().await.map_err(|e| e.to_string())?.ok_or_else(|| format!("{}: no CA hierarchy in this data directory", data.display()))?;
    let certificates = |wanted: &dyn Fn(&store::AuthorityRecord) -> bool| -> Result<Vec<Vec<u8>>, String> {
        let found: Vec<_> = ceremony.authorities.iter().filter(|a| wanted(a)).collect();
        found.iter().map(|a| hex::decode(&a.certificate).map_err(|e| format!("the ceremony's {}: {e}", a.name))).collect()
    };
    let root = certificates(&|a| a.name == ca::names::ROOT)?.pop().ok_or("the ceremony has no root")?;
    hierarchy(root, certificates(&|a| a.profile == ca::names::CITIZEN_SIGNING)?)
}

/// The hierarchy of a root and the Citizen Signing CA's generations (DER), each qualified
/// since its notBefore.
pub(crate) fn hierarchy(root: Vec<u8>, signing: Vec<Vec<u8>>) -> Result<OwnHierarchy, String> {
    use der::Decode;
    let mut qualified = Vec::with_capacity(signing.len());
    for der in signing {
        let since = x509_cert::Certificate::from_der(&der).map_err(|e| e.to_string())?.tbs_certificate.validity.not_before.to_system_time();
        qualified.push((der, since));
    }
    Ok(OwnHierarchy { anchors: vec![root], qualified })
}

/// The JSON report as a JWS (RFC 7515, compact) signed by the validation service of the CA in
/// `data`: the protected header names the algorithm, `kid` `validation-service`, `typ`, and
/// the chain in `x5c` (the service's certificate, the Services CA, the root), so that an
/// auditor checks it with any JOSE library and the national root alone.
async fn signed_json(data: &std::path::Path, report: &Report) -> Result<String, String> {
    use base64::Engine as _;
    let authority = authority(data).await?;
    let (signer, chain) = authority.validation_service().map_err(|e| format!("this CA cannot sign validation reports: {e}"))?;
    let x5c: Vec<serde_json::Value> = chain.iter().map(|der| base64::engine::general_purpose::STANDARD.encode(der).into()).collect();
    let mut header = serde_json::Map::new();
    header.insert("typ".into(), "hawiya-validation-report+jws".into());
    header.insert("cty".into(), "json".into());
    header.insert("x5c".into(), x5c.into());
    let payload = serde_json::to_vec(report).map_err(|e| e.to_string())?;
    hsm_shim::jose::sign_compact(signer, ca::names::VALIDATION_SERVICE, header, &payload).map_err(|e| e.to_string())
}

/// Revocation evidence over HTTP, for `--online` and policies with `online_revocation`: OCSP
/// responders and CRL distribution points the certificates name, http(s) only, each answer
/// at most 10 MiB and 5 s. Called from a thread that may block (the validation runs on one).
struct HttpFetch {
    http: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

/// The largest OCSP response or CRL fetched.
const MAX_FETCHED: usize = 10 * 1024 * 1024;

impl HttpFetch {
    fn new() -> Result<Self, String> {
        Ok(HttpFetch { http: idp::backchannel::http_client().map_err(|e| e.to_string())?, runtime: tokio::runtime::Handle::current() })
    }

    fn fetch(&self, request: impl std::future::Future<Output = Result<reqwest::Response, reqwest::Error>>) -> Option<Vec<u8>> {
        self.runtime.block_on(async {
            let response = tokio::time::timeout(std::time::Duration::from_secs(5), request).await.ok()?.ok()?;
            if !response.status().is_success() || response.content_length().is_some_and(|n| n > MAX_FETCHED as u64) {
                return None;
            }
            let body = tokio::time::timeout(std::time::Duration::from_secs(5), response.bytes()).await.ok()?.ok()?;
            (body.len() <= MAX_FETCHED).then(|| body.to_vec())
        })
    }
}

fn http_url(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

impl esign::validation::Fetch for HttpFetch {
    fn ocsp(&self, url: &str, request: &[u8]) -> Option<Vec<u8>> {
        http_url(url).then(|| self.fetch(self.http.post(url).header("content-type", "application/ocsp-request").body(request.to_vec()).send())).flatten()
    }

    fn crl(&self, url: &str) -> Option<Vec<u8>> {
        http_url(url).then(|| self.fetch(self.http.get(url).send())).flatten()
    }
}

/// The provider's validator: EN 319 102-1 validation against the trust list and this
/// deployment's own hierarchy, both read once at start; online only under a policy that says
/// `online_revocation`.
pub struct Validator {
    policies: std::sync::Arc<policies::Policies>,
    trust: Trust,
    fetch: HttpFetch,
}

impl Validator {
    /// A validator trusting what `policies`' trust list trusts and `own`; made on the runtime.
    pub fn new(policies: std::sync::Arc<policies::Policies>, own: &OwnHierarchy) -> Result<Self, String> {
        let trust = Trust::new(policies.trust_list(), Some(own), &[]).map_err(|e| e.to_string())?;
        Ok(Validator { policies, trust, fetch: HttpFetch::new()? })
    }
}

impl idp::validation::Validator for Validator {
    fn validate(&self, document: &[u8], name: &str, detached: Option<&[u8]>, policy: &policies::ValidationPolicy) -> idp::validation::Reports {
        let online = policy.online_revocation.then_some(&self.fetch as &dyn esign::validation::Fetch);
        let validation = Validation { policy, policies: &self.policies, trust: &self.trust, now: SystemTime::now(), online };
        let report = esign::validation::validate(document, name, detached, &validation);
        let json = serde_json::to_value(&report).unwrap_or_else(|e| serde_json::json!({"error": e.to_string()}));
        idp::validation::Reports { json, xml: esign::validation::xml::to_xml(&report) }
    }
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
    let file = open_limited(&args.file, MAX_INPUT_BYTES)?;
    let detached = args.detached.as_deref().map(|d| open_limited(d, MAX_INPUT_BYTES)).transpose()?;
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
    let fetch = HttpFetch::new()?;
    let online = (args.online || policy.online_revocation).then_some(&fetch as &dyn esign::validation::Fetch);
    let validation = Validation { policy, policies: &policies, trust: &trust, now: SystemTime::now(), online };
    // The fetcher blocks on the runtime: the validation runs where blocking is allowed.
    let report = tokio::task::block_in_place(|| esign::validation::validate_source(file.source(), &name, detached.as_ref().map(Input::source), &validation));
    let output = if args.signed {
        let data = args.data.as_deref().ok_or("--signed needs --data")?;
        match args.format {
            Format::Json => format!("{}\n", signed_json(data, &report).await?),
            Format::Xml => {
                let out = args.out.as_deref().ok_or("--signed --format xml needs --out <file>: the detached signature goes to <file>.p7s")?;
                let xml = esign::validation::xml::to_xml(&report);
                let signature = signed_xml(data, xml.as_bytes()).await?;
                write_file(out, xml.as_bytes())?;
                let mut p7s = out.as_os_str().to_owned();
                p7s.push(".p7s");
                write_file(std::path::Path::new(&p7s), &signature)?;
                return Ok(report.exit_code());
            }
            other => return Err(format!("--signed signs the JSON or the XML report, not the {other:?} one")),
        }
    } else {
        match args.format {
            Format::Json => format!("{}\n", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?),
            Format::Text => text(&report, args.lang),
            Format::Xml => esign::validation::xml::to_xml(&report),
            Format::Html => esign::validation::html::to_html(&report, args.lang.into()),
        }
    };
    match &args.out {
        Some(out) => write_file(out, output.as_bytes())?,
        None => print!("{output}"),
    }
    Ok(report.exit_code())
}

fn write_file(path: &std::path::Path, contents: &[u8]) -> Result<(), String> {
    std::fs::write(path, contents).map_err(|e| format!("{}: {e}", path.display()))
}

/// The CA of `data`, with its keys (the operator secret or the HSM PIN is needed).
async fn authority(data: &std::path::Path) -> Result<ca::authority::Authority, String> {
    let dir = crate::config::DataDir::open(data).map_err(|e| e.to_string())?;
    let store = dir.store().await.map_err(|e| e.to_string())?;
    ca::authority::Authority::load(store, dir.key_store().map_err(|e| e.to_string())?, dir.policies().map_err(|e| e.to_string())?)
        .await
        .map_err(|e| e.to_string())
}

/// The CA's own TSA and OCSP responder, asked in-process.
struct ServiceEvidence {
    tsa: ca::tsa::TimestampAuthority,
    ocsp: ca::ocsp::OcspResponder,
}

#[async_trait::async_trait]
impl esign::signature::Evidence for ServiceEvidence {
    async fn timestamp(&self, request: Vec<u8>) -> Result<Vec<u8>, String> {
        Ok(self.tsa.respond(&request, "validation-report").await)
    }

    async fn ocsp(&self, request: Vec<u8>) -> Result<Vec<u8>, String> {
        Ok(self.ocsp.respond(&request).await.to_vec())
    }
}

/// A detached CAdES B-LT signature (`.p7s`) over the XML report by the validation service:
/// the signature timestamped by the CA's TSA, the service certificate's OCSP response, the
/// Services CA and the CRLs inside, so that `openssl cms -verify` with the national root
/// (or DSS) checks it offline.
async fn signed_xml(data: &std::path::Path, xml: &[u8]) -> Result<Vec<u8>, String> {
    use ca::names;
    let authority = authority(data).await?;
    let (signer, _) = authority.validation_service().map_err(|e| format!("this CA cannot sign validation reports: {e}"))?;
    let evidence = ServiceEvidence {
        tsa: ca::tsa::TimestampAuthority::new(&authority).map_err(|e| e.to_string())?,
        ocsp: ca::ocsp::OcspResponder::new(&authority).map_err(|e| e.to_string())?,
    };
    let certificate = |name: &str| authority.certificate(name).map(<[u8]>::to_vec).map_err(|e| e.to_string());
    let mut crls = Vec::new();
    for name in [names::SERVICES, names::ROOT] {
        if let Some(crl) = authority.current_crl(name).await.map_err(|e| e.to_string())? {
            crls.push(crl.der);
        }
    }
    let chain = esign::signature::Chain {
        issuer: certificate(names::SERVICES)?,
        others: vec![certificate(names::ROOT)?, certificate(names::TSA)?, certificate(&names::ocsp_responder(names::SERVICES))?],
        crls,
    };
    let service = certificate(names::VALIDATION_SERVICE)?;
    let signing_time = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_err(|e| e.to_string())?.as_secs() as i64;
    // A cached OCSP response older than the timestamp is asked again (the responder re-signs).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let signing = esign::signature::Signing::prepare(xml, &service, signing_time).map_err(|e| e.to_string())?;
        let signature = signer.sign_bytes(signing.to_be_signed()).map_err(|e| e.to_string())?;
        match signing.complete(&signature, &evidence, &chain, false).await {
            Err(esign::signature::SignError::Cades(esign::cades::CadesError::OcspBeforeTimeStamp { .. })) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            other => return other.map_err(|e| format!("signing the report: {e}")),
        }
    }
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
        if let Some(after) = &s.retry_after {
            out.push_str(&if ar {
                format!("  أدلة الإلغاء غير حديثة بما يكفي؛ أعد التحقق بعد {after}\n")
            } else {
                format!("  the revocation evidence is not fresh enough; validate again after {after}\n")
            });
        }
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
    fn a_file_to_validate_over_the_limit_is_refused_unread_and_a_pipe_is_read_up_to_it() {
        let path = std::env::temp_dir().join(format!("hawiya-verify-open-{}", std::process::id()));
        std::fs::write(&path, [7u8; 100]).unwrap();
        let (at, over) = (open_limited(&path, 100), open_limited(&path, 99));
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(&at, Ok(Input::File(_))), "a regular file is read by offset");
        assert_eq!(at.unwrap().source().len(), 100);
        let error = over.err().unwrap();
        assert!(error.contains("100 bytes is more than the limit of 99 bytes (MAX_INPUT_BYTES)"), "{error}");
        let error = open_limited(std::path::Path::new("/dev/zero"), 4096).err().unwrap();
        assert!(error.contains("4097 bytes is more than the limit of 4096 bytes"), "{error}");
    }

    #[test]
    fn a_device_that_never_ends_is_cut_at_the_limit() {
        let error = read_limited(std::path::Path::new("/dev/zero"), 4096).unwrap_err();
        assert!(error.contains("4097 bytes is more than the limit of 4096 bytes"), "{error}");
    }
}
