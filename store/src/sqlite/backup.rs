//! A consistent copy of a live database with SQLite's online backup API.

use std::path::Path;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::{SqliteStore, audit, db};
use crate::StoreError;

impl SqliteStore {
    /// Copies the database file `source`, which servers may be writing meanwhile, into the
    /// new file `destination`: the copy is the database as one transaction saw it (one
    /// backup step reads every page under one read lock, which WAL lets writers bear), in
    /// rollback-journal mode so that it is one self-contained file, its integrity checked.
    /// Returns the audit log's last entry in the copy (number and hash), if any.
    pub fn backup(source: &Path, destination: &Path) -> Result<Option<(u64, [u8; 32])>, StoreError> {
        fn open_err(what: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
            move |e| StoreError::Open { what: what.display().to_string(), source: e.into() }
        }
        // Read-write without create: a missing source is an error, not a new empty database.
        let src = Connection::open_with_flags(source, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX).map_err(open_err(source))?;
        src.busy_timeout(std::time::Duration::from_secs(10)).map_err(db)?;
        if destination.exists() {
            return Err(StoreError::Open { what: destination.display().to_string(), source: "exists already".into() });
        }
        let mut dst = Connection::open(destination).map_err(open_err(destination))?;
        {
            let backup = Backup::new(&src, &mut dst).map_err(db)?;
            // Every page in one step: a copy made in several would restart whenever another
            // connection wrote in between, and see no single moment otherwise.
            loop {
                match backup.step(-1).map_err(db)? {
                    StepResult::Done => break,
                    // Busy or locked (a writer mid-commit): try again.
                    _ => std::thread::sleep(std::time::Duration::from_millis(20)),
                }
            }
        }
        drop(src);
        let mode: String = dst.query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0)).map_err(db)?;
        if !mode.eq_ignore_ascii_case("delete") {
            return Err(StoreError::Corrupt(format!("the copy stays in journal mode {mode}")));
        }
        let check: String = dst.query_row("PRAGMA quick_check", [], |r| r.get(0)).map_err(db)?;
        if check != "ok" {
            return Err(StoreError::Corrupt(format!("the copy fails SQLite's quick_check: {check}")));
        }
        let has_audit: bool =
            dst.query_row("SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'audit_log'", [], |r| r.get(0)).map_err(db)?;
        let head = if has_audit { audit::head(&dst)? } else { None };
        dst.close().map_err(|(_, e)| db(e))?;
        Ok(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditEvent, AuditStore};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_backup_is_one_file_with_what_was_committed_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (source, copy) = (dir.path().join("live.db"), dir.path().join("copy.db"));
        let store = SqliteStore::open(&source).expect("open");
        let event = |n: i64| AuditEvent { at: n, node: "test".into(), event: format!("e{n}"), fields: "{}".into() };
        store.append_audit([event(1), event(2)].into()).await.expect("append");
        let live_head = store.audit_head().await.expect("head").expect("two entries");
        let head = SqliteStore::backup(&source, &copy).expect("backup");
        assert_eq!(head, Some(live_head));
        store.append_audit([event(3)].into()).await.expect("append after");
        for suffix in ["-wal", "-shm", "-journal"] {
            assert!(!dir.path().join(format!("copy.db{suffix}")).exists(), "the copy is one file, no copy.db{suffix}");
        }
        let restored = SqliteStore::open(&copy).expect("the copy opens");
        assert_eq!(restored.audit_head().await.expect("head"), Some(live_head), "the copy ends where the backup did");
        assert_eq!(restored.audit_entries(1, 10).await.expect("entries").len(), 2);
        // While a writer appends: the copy is one moment of the log, its chain whole.
        let store = std::sync::Arc::new(store);
        let writer = {
            let store = store.clone();
            tokio::spawn(async move {
                for n in 10..400 {
                    store.append_audit([event(n), event(n)].into()).await.expect("append");
                }
            })
        };
        let during = dir.path().join("during.db");
        let (from, target) = (source.clone(), during.clone());
        let head = tokio::task::spawn_blocking(move || SqliteStore::backup(&from, &target)).await.expect("join").expect("backup");
        writer.await.expect("writer");
        let copy_store = SqliteStore::open(&during).expect("opens");
        let entries = copy_store.audit_entries(1, 10_000).await.expect("entries");
        let (seq, hash) = head.expect("a head");
        assert_eq!(entries.last().map(|e| (e.seq, e.hash)), Some((seq, hash)), "the manifest's head is the copy's last entry");
        let verified = crate::audit::verify(entries, 1, &[], |_| Ok(())).expect("the copied chain verifies");
        assert_eq!(verified.last, seq);
        let e = SqliteStore::backup(&source, &copy).expect_err("refused");
        assert!(e.to_string().contains("exists already"), "{e}");
        let e = SqliteStore::backup(&dir.path().join("missing.db"), &dir.path().join("other.db")).expect_err("no source");
        assert!(matches!(e, StoreError::Open { .. }), "{e}");
        assert!(!dir.path().join("missing.db").exists(), "a missing source is not created");
    }
}
