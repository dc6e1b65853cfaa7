//! The audit log's checkpoints, and `hawiya audit`.
//!
//! A server signs a checkpoint of the chain with the audit-log key (certified by the
//! Services CA, profile `audit-log`) every minute, or every 1,000 entries, when entries were
//! added since its last (`HAWIYA_AUDIT_CHECKPOINT=seconds,entries` changes both).
//!
//! `hawiya audit verify` walks the whole chain in the store (or an exported file) and names
//! the first break; each checkpoint's certificate must chain to the Services CA (the store's,
//! or `--trust`), carry the audit-log policy and digitalSignature, and its key must have
//! signed the checkpoint. `export` writes entries as JSON lines, `{"entry": …}` in order,
//! then the checkpoints over them, `{"checkpoint": …}` — the format of `store::audit`'s
//! types, which the module doc of `store/src/audit/mod.rs` defines octet by octet for
//! independent verifiers.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use clap::Subcommand;
use store::audit::{AuditEntry, Checkpoint, Verified};

use crate::config::DataDir;

/// How many entries are read from the store at once.
const PAGE: usize = 10_000;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Verifies the audit chain of a data directory's store, or of an exported file, and
    /// names the first entry that was edited, deleted, reordered, inserted or cut off.
    Verify {
        /// The data directory.
        #[arg(long, conflicts_with = "file", required_unless_present = "file")]
        data: Option<PathBuf>,
        /// A file written by `hawiya audit export`.
        #[arg(long, requires = "trust")]
        file: Option<PathBuf>,
        /// The Services CA's certificate (PEM), which certifies the audit-log key (with
        /// `--file`; with `--data` the store's own).
        #[arg(long)]
        trust: Option<PathBuf>,
    },
    /// Writes entries `--from` to `--to` (all by default) and their checkpoints as JSON lines.
    Export {
        /// The data directory.
        #[arg(long)]
        data: PathBuf,
        /// The first entry.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// The last entry (default: the last there is).
        #[arg(long)]
        to: Option<u64>,
        /// Where to write (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// One line of an export.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum Line {
    Entry(AuditEntry),
    Checkpoint(Checkpoint),
}

/// Runs an audit command; `Err` is the one line to print (a break in the chain among them).
pub async fn run(command: AuditCommand) -> Result<(), Box<dyn std::error::Error>> {
    match command {
        AuditCommand::Verify { data: Some(data), .. } => {
            let store = DataDir::open(&data)?.store().await?;
            report(verify_store(store.as_ref(), u64::MAX).await?.0);
            Ok(())
        }
        AuditCommand::Verify { file: Some(file), trust: Some(trust), .. } => {
            let anchors = pkix::path::TrustAnchors::from_der(&crate::verify::pem_certificates(&trust)?)?;
            let (entries, checkpoints) = read_file(&file)?;
            let from = entries.first().map_or(1, |e| e.seq);
            report(store::audit::verify(entries, from, &checkpoints, |c| checkpoint_signed(c, &anchors))?);
            Ok(())
        }
        AuditCommand::Verify { .. } => Err("say --data or --file".into()),
        AuditCommand::Export { data, from, to, out } => {
            let store = DataDir::open(&data)?.store().await?;
            let (entries, checkpoints) = read_store(store.as_ref(), from.max(1), to.unwrap_or(u64::MAX)).await?;
            let mut text = Vec::new();
            for line in entries.into_iter().map(Line::Entry).chain(checkpoints.into_iter().map(Line::Checkpoint)) {
                serde_json::to_writer(&mut text, &line)?;
                text.push(b'\n');
            }
            match out {
                Some(path) => std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?,
                None => std::io::stdout().lock().write_all(&text)?,
            }
            Ok(())
        }
    }
}

/// Verifies the chain of `store` from its first entry up to entry `to` (or its last), each
/// checkpoint against the store's Services CA; what verified and the hash of the last entry.
pub async fn verify_store(store: &dyn store::DurableStore, to: u64) -> Result<(Verified, Option<[u8; 32]>), Box<dyn std::error::Error>> {
    let services = store
        .ceremony()
        .await?
        .and_then(|c| c.authorities.into_iter().find(|a| a.name == ca::names::SERVICES))
        .ok_or("the store holds no Services CA to check checkpoints against")?;
    let anchors = pkix::path::TrustAnchors::from_der(&[hex::decode(&services.certificate)?])?;
    let (entries, checkpoints) = read_store(store, 1, to).await?;
    let last = entries.last().map(|e| e.hash);
    Ok((store::audit::verify(entries, 1, &checkpoints, |c| checkpoint_signed(c, &anchors))?, last))
}

fn report(v: Verified) {
    println!("The audit log is intact: {} entries (up to entry {}).", v.entries, v.last);
    match v.signed_up_to {
        0 => println!("No checkpoint signs any of it yet."),
        n if n == v.last => println!("{} checkpoints sign all of it.", v.checkpoints),
        n => println!("{} checkpoints sign it up to entry {n}; the {} entries after are chained but not yet signed.", v.checkpoints, v.last - n),
    }
}

/// The audit-log certificates' policy (policies/profiles/audit-log.toml).
const AUDIT_LOG_POLICY: &str = "2.16.400.1.1.2.3";

/// Whether `c` was signed by an audit-log key that `anchors` (the Services CA) certified,
/// valid when it signed.
fn checkpoint_signed(c: &Checkpoint, anchors: &pkix::path::TrustAnchors) -> Result<(), String> {
    use der::Decode;
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(c.at).map_err(|_| "a checkpoint before 1970")?);
    let mut options = pkix::path::PathOptions::at(when);
    options.required_key_usage = vec![x509_cert::ext::pkix::KeyUsages::DigitalSignature];
    let empty: [&[u8]; 0] = [];
    pkix::path::validate(&c.certificate, &empty, anchors, &options, None).map_err(|e| format!("its certificate: {e}"))?;
    let certificate = x509_cert::Certificate::from_der(&c.certificate).map_err(|e| format!("its certificate: {e}"))?;
    let policies = pkix::path::certificate_policies(&certificate).and_then(Result::ok).unwrap_or_default();
    if !policies.iter().any(|p| p.to_string() == AUDIT_LOG_POLICY) {
        return Err("its certificate is not an audit-log certificate (no audit log policy)".into());
    }
    let spki = der::Encode::to_der(&certificate.tbs_certificate.subject_public_key_info).map_err(|e| e.to_string())?;
    let key = hsm_shim::PublicKey::from_spki_der(&spki).map_err(|e| e.to_string())?;
    key.verify(key.spec().default_algorithm(), &Checkpoint::message(c.seq, &c.hash, c.at), &c.signature).map_err(|_| "its signature does not verify".to_owned())
}

/// How often checkpoints are signed: (seconds, entries), from `HAWIYA_AUDIT_CHECKPOINT`.
fn checkpoint_rhythm() -> Result<(u64, u64), String> {
    match std::env::var("HAWIYA_AUDIT_CHECKPOINT") {
        Err(_) => Ok((60, 1000)),
        Ok(v) => v
            .split_once(',')
            .and_then(|(s, n)| Some((s.trim().parse().ok()?, n.trim().parse().ok()?)))
            .filter(|(s, n)| *s > 0 && *n > 0)
            .ok_or_else(|| format!("HAWIYA_AUDIT_CHECKPOINT={v:?}: say seconds,entries (two numbers above zero)")),
    }
}

/// Signs checkpoints of `store`'s chain with the audit-log key of `authority`, in the
/// background, for as long as the process runs. A hierarchy made before the audit log had
/// a key of its own cannot: that is logged once, and the chain stays unsigned.
pub fn start_checkpoints(store: std::sync::Arc<dyn store::DurableStore>, authority: std::sync::Arc<ca::Authority>) -> Result<(), String> {
    let (seconds, entries) = checkpoint_rhythm()?;
    if let Err(e) = authority.audit_log() {
        tracing::warn!(error = %e, "this CA hierarchy has no audit-log key: audit checkpoints are not signed");
        return Ok(());
    }
    tokio::spawn(async move {
        let mut signed = 0u64;
        let mut since = std::time::Instant::now();
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            let head = match store.audit_head().await {
                Ok(Some(head)) => head,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "audit head not read");
                    continue;
                }
            };
            if head.0 <= signed || (head.0 - signed < entries && since.elapsed().as_secs() < seconds) {
                continue;
            }
            match sign_checkpoint(store.as_ref(), &authority, head).await {
                Ok(()) => {
                    signed = head.0;
                    since = std::time::Instant::now();
                }
                Err(e) => tracing::error!(error = %e, seq = head.0, "audit checkpoint not signed"),
            }
        }
    });
    Ok(())
}

/// Signs and stores a checkpoint of the chain ending at `head`; one another replica stored
/// for the same entry first stands.
async fn sign_checkpoint(store: &dyn store::DurableStore, authority: &ca::Authority, (seq, hash): (u64, [u8; 32])) -> Result<(), String> {
    let (signer, certificate) = authority.audit_log().map_err(|e| e.to_string())?;
    let at = store::audit::unix_millis();
    let signature = signer.sign_bytes(&Checkpoint::message(seq, &hash, at)).map_err(|e| e.to_string())?;
    let checkpoint = Checkpoint { seq, hash, at, signature, certificate: certificate.to_vec() };
    match store.put_audit_checkpoint(&checkpoint).await {
        Ok(()) => Ok(()),
        Err(_) if store.audit_checkpoints(seq, seq).await.is_ok_and(|c| !c.is_empty()) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// Entries `from` to `to` of the store, and the checkpoints over them.
async fn read_store(store: &dyn store::DurableStore, from: u64, to: u64) -> Result<(Vec<AuditEntry>, Vec<Checkpoint>), Box<dyn std::error::Error>> {
    // The checkpoints first: each covers entries already there when it was read, so entries
    // appended while the log is read cannot look like a cut tail. A checkpoint past the
    // last entry read does show one.
    let checkpoints = store.audit_checkpoints(from, to).await?;
    let mut entries = Vec::new();
    let mut next = from;
    while next <= to {
        let page = store.audit_entries(next, PAGE).await?;
        let Some(last) = page.last().map(|e| e.seq) else { break };
        entries.extend(page.into_iter().filter(|e| e.seq <= to));
        next = last + 1;
    }
    Ok((entries, checkpoints))
}

/// The entries and checkpoints of an export.
fn read_file(path: &Path) -> Result<(Vec<AuditEntry>, Vec<Checkpoint>), Box<dyn std::error::Error>> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let (mut entries, mut checkpoints) = (Vec::new(), Vec::new());
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Line>(&line).map_err(|e| format!("{} line {}: not an audit export line: {e}", path.display(), n + 1))? {
            Line::Entry(e) => entries.push(e),
            Line::Checkpoint(c) => checkpoints.push(c),
        }
    }
    Ok((entries, checkpoints))
}
