//! Schema migrations: numbered SQL files, `store/migrations/<backend>/NNNN_what.sql`, built
//! into the binary and applied in order when a store opens, each in its own transaction.
//!
//! The database records every version applied in `schema_migrations (version, applied_at)`,
//! the table every release so far has kept; its highest version is the schema's. A database
//! of an earlier release is recognised by that table and migrated from where it stands; one
//! whose version is newer than any file here is refused ([`StoreError::SchemaTooNew`]).
//!
//! A file, once released, is never edited: databases that recorded its version would never
//! see the change. A change is a new file.

use crate::StoreError;

/// One migration: a file of SQL statements.
#[derive(Debug)]
pub(crate) struct Migration {
    /// Its number: 1, 2, 3, … without gaps.
    pub(crate) version: i64,
    /// Its file name (`0003_refresh_families.sql`).
    pub(crate) name: &'static str,
    /// The statements.
    pub(crate) sql: &'static str,
}

/// A migration from `store/migrations/<backend>/<name>`.
macro_rules! migration {
    ($backend:literal, $version:literal, $name:literal) => {
        $crate::migration::Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/", $backend, "/", $name)),
        }
    };
}
pub(crate) use migration;

/// The migrations a database of `what` at version `current` still needs, in order; refuses a
/// version newer than the last of `migrations`.
pub(crate) fn pending<'m>(migrations: &'m [Migration], what: &str, current: i64) -> Result<&'m [Migration], StoreError> {
    let known = migrations.last().map_or(0, |m| m.version);
    if current > known {
        return Err(StoreError::SchemaTooNew { what: what.to_owned(), found: current, known });
    }
    Ok(&migrations[migrations.partition_point(|m| m.version <= current)..])
}

#[cfg(test)]
mod tests {
    use super::*;

    const THREE: &[Migration] = &[
        Migration { version: 1, name: "0001_a.sql", sql: "" },
        Migration { version: 2, name: "0002_b.sql", sql: "" },
        Migration { version: 3, name: "0003_c.sql", sql: "" },
    ];

    #[test]
    fn pending_migrations_follow_the_current_version() {
        let versions = |current| pending(THREE, "db", current).map(|p| p.iter().map(|m| m.version).collect::<Vec<_>>());
        assert_eq!(versions(0).expect("empty database"), [1, 2, 3]);
        assert_eq!(versions(2).expect("at 2"), [3]);
        assert_eq!(versions(3).expect("up to date"), Vec::<i64>::new());
        assert!(matches!(versions(4), Err(StoreError::SchemaTooNew { found: 4, known: 3, .. })));
    }

    #[test]
    fn every_file_is_a_migration_numbered_as_named() {
        assert_lists_every_file("sqlite", crate::sqlite::MIGRATIONS);
        assert_lists_every_file("postgres", crate::postgres::MIGRATIONS);
    }

    /// Every file under `migrations/<backend>` is listed, in order, numbered as named.
    fn assert_lists_every_file(backend: &str, migrations: &[Migration]) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(backend);
        let mut files: Vec<String> =
            std::fs::read_dir(&dir).expect("migrations directory").map(|e| e.expect("entry").file_name().to_string_lossy().into_owned()).collect();
        files.sort();
        let listed: Vec<&str> = migrations.iter().map(|m| m.name).collect();
        assert_eq!(listed, files, "every file of {} is a migration, in order", dir.display());
        for (i, m) in migrations.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1, "{} is numbered without gaps", m.name);
            assert!(m.name.starts_with(&format!("{:04}_", m.version)) && m.name.ends_with(".sql"), "{} is named NNNN_what.sql after its version", m.name);
        }
    }
}
