//! `hawiya backup` and `hawiya restore`: a data directory copied while servers run, and put
//! back on another machine.
//!
//! A backup is a directory: the SQLite database as one transaction saw it (SQLite's online
//! backup API), every other file of the data directory as it is (`hawiya.toml`, the
//! provider secret, the soft key store's files, sealed under the operator secret), and
//! `manifest.json`, written last, naming each file with its size and SHA-256 and the audit
//! log's last entry in the copy. The operator secret is never in it: not the demo's
//! `operator-secret`, not the file `HAWIYA_OPERATOR_SECRET_FILE` names, not any file that
//! holds the secret. A PostgreSQL database is backed up by PostgreSQL's own procedure
//! (`pg_basebackup` and WAL archiving, README), and keys in an HSM by the HSM's.
//!
//! A restore checks every file against the manifest before it writes anything, writes only
//! into a new or empty directory, and then checks that the store opens and that its audit
//! chain verifies up to the manifest's last entry; a restore that fails leaves the target
//! as it found it.

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{CONFIG_FILE, DEMO_SECRET_FILE, DataDir, KeyStoreConfig, StoreConfig};

/// The manifest's file name in a backup directory.
pub const MANIFEST: &str = "manifest.json";
/// The manifest format this release writes and reads.
const FORMAT: u32 = 1;

/// What a backup holds.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Format version (1).
    pub format: u32,
    /// When the backup was made (RFC 3339, UTC).
    pub made_at: String,
    /// The version of Hawiya that made it.
    pub hawiya_version: String,
    /// The durable store's kind: `sqlite` (in the backup) or `postgres` (not in it).
    pub store: String,
    /// The key store's kind: `soft` (its files in the backup) or `pkcs11` (in the HSM).
    pub key_store: String,
    /// Every file, relative to the data directory.
    pub files: Vec<FileEntry>,
    /// The audit log's last entry when the backup was made (in the copied database for
    /// SQLite; in PostgreSQL at that moment otherwise), if the log has any.
    pub audit_head: Option<AuditHead>,
}

/// One file of a backup.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Its path relative to the data directory, `/`-separated.
    pub path: String,
    /// Its size in octets.
    pub size: u64,
    /// Its SHA-256, hexadecimal.
    pub sha256: String,
}

/// The audit log's last entry.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditHead {
    /// Its number.
    pub seq: u64,
    /// Its hash, hexadecimal.
    pub hash: String,
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Copies `from` to the new file `to`; its size and SHA-256.
fn copy_hashed(from: &Path, to: &Path) -> std::io::Result<(u64, String)> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut output = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(to)?;
    let hashed = read_hashed(from, Some(&mut output))?;
    output.sync_all()?;
    Ok(hashed)
}

/// The size and SHA-256 of a file.
fn hash_file(path: &Path) -> std::io::Result<(u64, String)> {
    read_hashed(path, None)
}

/// Reads `from` (writing it to `copy` on the way); its size and SHA-256.
fn read_hashed(from: &Path, mut copy: Option<&mut std::fs::File>) -> std::io::Result<(u64, String)> {
    let mut input = std::fs::File::open(from)?;
    let mut digest = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut buffer = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = input.read(&mut buffer)?;
        if n == 0 {
            return Ok((size, hex::encode(digest.finish())));
        }
        digest.update(&buffer[..n]);
        if let Some(out) = copy.as_mut() {
            out.write_all(&buffer[..n])?;
        }
        size += n as u64;
    }
}

/// Whether `dir` is missing or an empty directory; an error names what is wrong otherwise.
fn new_or_empty(dir: &Path, what: &str) -> Result<bool> {
    match std::fs::read_dir(dir).map(|mut entries| entries.next().is_none()) {
        Ok(true) => Ok(true),
        Ok(false) => Err(format!("{} is not empty: {what} goes into a new or empty directory", dir.display()).into()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(format!("{}: {e}", dir.display()).into()),
    }
}

/// `path` relative to `base`, both made absolute; `None` when it lies outside.
fn inside(base: &Path, path: &Path) -> Option<PathBuf> {
    let path = std::path::absolute(path).ok()?;
    path.strip_prefix(base).ok().map(Path::to_owned)
}

fn io_at(path: &Path) -> impl Fn(std::io::Error) -> Box<dyn std::error::Error> + '_ {
    move |e| format!("{}: {e}", path.display()).into()
}

/// `hawiya backup --data DATA --out OUT`.
pub async fn backup(data: &Path, out: &Path) -> crate::CommandResult {
    let dir = DataDir::open(data)?;
    let base = std::path::absolute(data)?;
    new_or_empty(out, "a backup")?;
    if inside(&base, out).is_some() {
        return Err(format!("{} is inside the data directory {}: put the backup elsewhere", out.display(), data.display()).into());
    }
    // Files that are not copied as they are: the database (copied through SQLite) and its
    // journals, and the operator secret wherever it is.
    let database = match dir.sqlite_path() {
        Some(path) => Some(
            inside(&base, &path)
                .ok_or_else(|| format!("the database {} is outside the data directory: back it up with the directory it is in", path.display()))?,
        ),
        None => None,
    };
    if let Some(keys) = dir.soft_key_dir()
        && inside(&base, &keys).is_none()
    {
        return Err(format!("the key store {} is outside the data directory: back it up with the directory it is in", keys.display()).into());
    }
    let mut skipped: Vec<PathBuf> = vec![PathBuf::from(DEMO_SECRET_FILE)];
    if let Some(db) = &database {
        for suffix in ["-wal", "-shm", "-journal"] {
            let mut name = db.clone().into_os_string();
            name.push(suffix);
            skipped.push(name.into());
        }
    }
    if let Some(file) = std::env::var_os(hsm_shim::soft::OperatorSecret::ENV_FILE).and_then(|f| inside(&base, Path::new(&f))) {
        skipped.push(file);
    }
    let secret = match hsm_shim::soft::OperatorSecret::from_env()? {
        Some(secret) => Some(secret),
        None if data.join(DEMO_SECRET_FILE).exists() => Some(hsm_shim::soft::OperatorSecret::from_file(&data.join(DEMO_SECRET_FILE))?),
        None => None,
    };

    let store = dir.store().await?;
    let mut files = Vec::new();
    let mut to_copy = Vec::new();
    walk(&base, Path::new(""), &mut to_copy)?;
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(out).map_err(io_at(out))?;
    }
    for relative in to_copy {
        if skipped.contains(&relative) || Some(&relative) == database.as_ref() {
            continue;
        }
        let source = base.join(&relative);
        if let Some(secret) = &secret
            && holds_secret(&source, secret.expose()).map_err(io_at(&source))?
        {
            println!("Not copied: {} holds the operator secret.", source.display());
            continue;
        }
        let target = out.join(&relative);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io_at(parent))?;
        }
        let (size, sha256) = copy_hashed(&source, &target).map_err(io_at(&source))?;
        files.push(FileEntry { path: slashed(&relative)?, size, sha256 });
    }
    let head = match (&database, dir.sqlite_path()) {
        (Some(relative), Some(source)) => {
            let target = out.join(relative);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(io_at(parent))?;
            }
            let copy = target.clone();
            let head = tokio::task::spawn_blocking(move || store::SqliteStore::backup(&source, &copy)).await??;
            let (size, sha256) = hash_file(&target).map_err(io_at(&target))?;
            files.push(FileEntry { path: slashed(relative)?, size, sha256 });
            head
        }
        _ => store.audit_head().await?,
    };
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let made_at = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339)?;
    let manifest = Manifest {
        format: FORMAT,
        made_at,
        hawiya_version: env!("CARGO_PKG_VERSION").to_owned(),
        store: match dir.config.store {
            StoreConfig::Sqlite { .. } => "sqlite",
            StoreConfig::Postgres { .. } => "postgres",
        }
        .to_owned(),
        key_store: match dir.config.key_store {
            KeyStoreConfig::Soft { .. } => "soft",
            KeyStoreConfig::Pkcs11 { .. } => "pkcs11",
        }
        .to_owned(),
        files,
        audit_head: head.map(|(seq, hash)| AuditHead { seq, hash: hex::encode(hash) }),
    };
    // Last: a backup without its manifest is one that did not finish.
    let file = out.join(MANIFEST);
    let mut json = serde_json::to_vec_pretty(&manifest)?;
    json.push(b'\n');
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&file).map_err(io_at(&file))?;
        f.write_all(&json).and_then(|()| f.sync_all()).map_err(io_at(&file))?;
    }
    let seq = manifest.audit_head.as_ref().map_or(0, |h| h.seq);
    tracing::info!(target: "audit", event = "backup.made", out = %out.display(), files = manifest.files.len(), audit_seq = seq, store = manifest.store, "backup made");
    println!("Backed up {} into {}: {} files, the audit log up to entry {seq}.", data.display(), out.display(), manifest.files.len());
    if let StoreConfig::Postgres { .. } = dir.config.store {
        println!("The PostgreSQL database is not in it: back it up with pg_basebackup and WAL archiving (README, production guide, Backups).");
    }
    if let KeyStoreConfig::Pkcs11 { token, .. } = &dir.config.key_store {
        println!("The keys stay in the HSM (PKCS#11 token {token}): back them up by the HSM's own procedure.");
    }
    Ok(())
}

/// Every regular file under `base/relative`, relative to `base`, in name order; skips
/// dot files (a key store's or a configuration's half-written temporary files).
fn walk(base: &Path, relative: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    let dir = base.join(relative);
    let mut entries: Vec<_> = std::fs::read_dir(&dir).map_err(io_at(&dir))?.collect::<std::io::Result<_>>().map_err(io_at(&dir))?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = relative.join(&name);
        let kind = entry.file_type().map_err(io_at(&entry.path()))?;
        if kind.is_dir() {
            walk(base, &path, files)?;
        } else if kind.is_file() {
            files.push(path);
        } else {
            return Err(format!(
                "{} is neither a file nor a directory: not backed up (copy what it points to into the data directory)",
                entry.path().display()
            )
            .into());
        }
    }
    Ok(())
}

/// Whether the file is the operator secret (with or without a trailing newline).
fn holds_secret(path: &Path, secret: &[u8]) -> std::io::Result<bool> {
    let length = std::fs::metadata(path)?.len();
    if length < secret.len() as u64 || length > secret.len() as u64 + 2 {
        return Ok(false);
    }
    let bytes = zeroize::Zeroizing::new(std::fs::read(path)?);
    let trimmed = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
    let trimmed = trimmed.strip_suffix(b"\r").unwrap_or(trimmed);
    Ok(aws_lc_rs::constant_time::verify_slices_are_equal(trimmed, secret).is_ok())
}

/// A relative path as the manifest writes it.
fn slashed(path: &Path) -> Result<String> {
    let parts: Option<Vec<&str>> = path.components().map(|c| if let Component::Normal(p) = c { p.to_str() } else { None }).collect();
    parts.map(|p| p.join("/")).ok_or_else(|| format!("{}: not a plain UTF-8 relative path", path.display()).into())
}

/// A manifest's path as a relative path inside the data directory, or why not.
fn relative_path(path: &str) -> Option<PathBuf> {
    let p = Path::new(path);
    let plain = !path.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)));
    (plain && path != DEMO_SECRET_FILE && path != MANIFEST).then(|| p.to_owned())
}

/// Reads and checks a backup's manifest.
pub fn read_manifest(from: &Path) -> Result<Manifest> {
    let file = from.join(MANIFEST);
    let text = match std::fs::read(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("{} is missing: {} is not a finished backup; nothing restored", file.display(), from.display()).into());
        }
        Err(e) => return Err(format!("{}: {e}", file.display()).into()),
    };
    let manifest: Manifest = serde_json::from_slice(&text).map_err(|e| format!("{}: not a backup manifest: {e}; nothing restored", file.display()))?;
    if manifest.format != FORMAT {
        return Err(format!("{}: format {} is not known to this release (it reads {FORMAT}); nothing restored", file.display(), manifest.format).into());
    }
    if !manifest.files.iter().any(|f| f.path == CONFIG_FILE) {
        return Err(format!("{}: lists no {CONFIG_FILE}; nothing restored", file.display()).into());
    }
    if let Some(bad) = manifest.files.iter().find(|f| relative_path(&f.path).is_none()) {
        return Err(format!("{}: {:?} is not a file a data directory holds; nothing restored", file.display(), bad.path).into());
    }
    Ok(manifest)
}

/// `hawiya restore --from FROM --data DATA`.
pub async fn restore(from: &Path, data: &Path) -> crate::CommandResult {
    let manifest = read_manifest(from)?;
    let existed = new_or_empty(data, "a restore")?;
    // Every file as the manifest says, before anything is written.
    for f in &manifest.files {
        let source = from.join(&f.path);
        match hash_file(&source) {
            Ok((size, sha256)) if size == f.size && sha256 == f.sha256 => {}
            Ok(_) => return Err(format!("{}: changed since the backup (its size or SHA-256 is not the manifest's); nothing restored", source.display()).into()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(format!("{}: missing from the backup; nothing restored", source.display()).into()),
            Err(e) => return Err(format!("{}: {e}; nothing restored", source.display()).into()),
        }
    }
    match put_in_place(from, data, &manifest).await {
        Ok(seq) => {
            tracing::info!(target: "audit", event = "backup.restored", from = %from.display(), made_at = manifest.made_at, audit_seq = seq, "backup restored");
            println!(
                "Restored the backup of {} into {}: {} files; the audit log verifies up to entry {seq}.",
                manifest.made_at,
                data.display(),
                manifest.files.len()
            );
            if manifest.store == "postgres" {
                println!("The PostgreSQL database is restored apart (pg_basebackup and WAL, README); then `hawiya audit verify --data {}`.", data.display());
            }
            Ok(())
        }
        Err(e) => {
            // As it was: missing, or empty.
            let cleaned = std::fs::remove_dir_all(data).and_then(|()| if existed { std::fs::create_dir(data) } else { Ok(()) });
            if let Err(c) = cleaned {
                return Err(format!("{e}; and what was written to {} could not be removed: {c}", data.display()).into());
            }
            Err(format!("{e}; nothing restored").into())
        }
    }
}

/// Writes the files, checks them again as they are copied, and checks that the store opens
/// and its audit chain verifies up to the manifest's last entry; that entry's number. Once
/// it has checked, this process's audit events go to the restored store.
async fn put_in_place(from: &Path, data: &Path, manifest: &Manifest) -> Result<u64> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(data).map_err(io_at(data))?;
    for f in &manifest.files {
        let relative = relative_path(&f.path).ok_or("a path checked before")?;
        let target = data.join(&relative);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io_at(parent))?;
        }
        let source = from.join(&relative);
        let (size, sha256) = copy_hashed(&source, &target).map_err(io_at(&source))?;
        if size != f.size || sha256 != f.sha256 {
            return Err(format!("{}: changed while it was restored", source.display()).into());
        }
    }
    let dir = DataDir::open(data)?;
    // The keys, where this machine can reach them: the soft store when the operator secret
    // is set, the token when its PIN is.
    let reachable = match dir.config.key_store {
        KeyStoreConfig::Soft { .. } => hsm_shim::soft::OperatorSecret::from_env()?.is_some(),
        KeyStoreConfig::Pkcs11 { .. } => [hsm_shim::pkcs11::Pin::ENV, hsm_shim::pkcs11::Pin::ENV_FILE].iter().any(|v| std::env::var_os(v).is_some()),
    };
    if reachable {
        let keys = dir.key_store().map_err(|e| format!("the restored key store does not open: {e}"))?;
        keys.list().map_err(|e| format!("the restored key store does not answer: {e}"))?;
    }
    if manifest.store != "sqlite" {
        return Ok(manifest.audit_head.as_ref().map_or(0, |h| h.seq));
    }
    let store = dir.store_unrecorded().await.map_err(|e| format!("the restored store does not open: {e}"))?;
    let (seq, hash) = match &manifest.audit_head {
        Some(head) => (head.seq, Some(head.hash.clone())),
        None => (0, None),
    };
    let (verified, last) = crate::audit::verify_store(store.as_ref(), seq.max(1)).await.map_err(|e| format!("the restored audit log: {e}"))?;
    if verified.last != seq {
        return Err(format!("the restored audit log ends at entry {}, not at the manifest's entry {seq}", verified.last).into());
    }
    if last.map(hex::encode) != hash {
        return Err(format!("the restored audit log's entry {seq} is not the one the manifest names (another hash)").into());
    }
    crate::logging::start_audit(store);
    Ok(seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_paths_stay_inside_the_data_directory_and_never_name_the_secret() {
        assert_eq!(relative_path("keys/root.key"), Some(PathBuf::from("keys/root.key")));
        for bad in ["", "/etc/passwd", "../x", "keys/../../x", "./hawiya.toml", DEMO_SECRET_FILE, MANIFEST] {
            assert_eq!(relative_path(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_operator_secret_is_recognised_with_or_without_a_newline() {
        let dir = tempfile::tempdir().expect("dir");
        let secret = b"an operator secret of some length";
        for (name, text) in [("plain", &secret[..]), ("newline", b"an operator secret of some length\n")] {
            std::fs::write(dir.path().join(name), text).expect("write");
            assert!(holds_secret(&dir.path().join(name), secret).expect("read"), "{name}");
        }
        std::fs::write(dir.path().join("other"), b"an operator secret of some lengtH").expect("write");
        assert!(!holds_secret(&dir.path().join("other"), secret).expect("read"));
    }
}
