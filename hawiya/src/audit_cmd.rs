//! `hawiya audit`: the audit log of a data directory, verified or exported.
//!
//! `verify` walks the whole chain in the store (or an exported file) and names the first
//! break; `export` writes entries as JSON lines, `{"entry": …}` in order, then the
//! checkpoints over them, `{"checkpoint": …}` — the format of `store::audit`'s types, which
//! the module doc of `store/src/audit.rs` defines octet by octet for independent verifiers.

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
        #[arg(long)]
        file: Option<PathBuf>,
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
            let (entries, checkpoints) = read_store(&data, 1, u64::MAX).await?;
            report(store::audit::verify(entries, 1, &checkpoints, checkpoint_signed)?);
            Ok(())
        }
        AuditCommand::Verify { file: Some(file), .. } => {
            let (entries, checkpoints) = read_file(&file)?;
            let from = entries.first().map_or(1, |e| e.seq);
            report(store::audit::verify(entries, from, &checkpoints, checkpoint_signed)?);
            Ok(())
        }
        AuditCommand::Verify { .. } => Err("say --data or --file".into()),
        AuditCommand::Export { data, from, to, out } => {
            let (entries, checkpoints) = read_store(&data, from.max(1), to.unwrap_or(u64::MAX)).await?;
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

fn report(v: Verified) {
    println!("The audit log is intact: {} entries (up to entry {}).", v.entries, v.last);
    match v.signed_up_to {
        0 => println!("No checkpoint signs any of it yet."),
        n if n == v.last => println!("{} checkpoints sign all of it.", v.checkpoints),
        n => println!("{} checkpoints sign it up to entry {n}; the {} entries after are chained but not yet signed.", v.checkpoints, v.last - n),
    }
}

/// Checkpoint signatures: the audit key that signs them is not built yet, so a checkpoint
/// (which nothing writes today) is refused rather than trusted.
fn checkpoint_signed(_: &Checkpoint) -> Result<(), String> {
    Err("this version cannot check checkpoint signatures yet".into())
}

/// Entries `from` to `to` of the store, and the checkpoints over them.
async fn read_store(data: &Path, from: u64, to: u64) -> Result<(Vec<AuditEntry>, Vec<Checkpoint>), Box<dyn std::error::Error>> {
    let store = DataDir::open(data)?.store().await?;
    let mut entries = Vec::new();
    let mut next = from;
    while next <= to {
        let page = store.audit_entries(next, PAGE).await?;
        let Some(last) = page.last().map(|e| e.seq) else { break };
        entries.extend(page.into_iter().filter(|e| e.seq <= to));
        next = last + 1;
    }
    let last = entries.last().map_or(from, |e| e.seq);
    // The checkpoints of the range, and any after it: one past the end shows a cut tail.
    let checkpoints = store.audit_checkpoints(from, if to == u64::MAX { u64::MAX } else { last }).await?;
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
