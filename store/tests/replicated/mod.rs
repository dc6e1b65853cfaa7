//! A store on a fresh database of each backend, with the configuration that opens another
//! replica's store on the same database: for the suites about replicas working together
//! (the audit chain, the delivery queue).

use std::sync::Arc;

use store::{DurableConfig, DurableStore};

/// A database, a store on it, and its configuration.
pub struct Backend {
    pub store: Arc<dyn DurableStore>,
    pub config: DurableConfig,
    pub _dir: tempfile::TempDir,
}

impl Backend {
    /// Another replica's store on the same database.
    pub async fn replica(&self) -> Arc<dyn DurableStore> {
        store::open(&self.config).await.expect("a second replica")
    }
}

pub async fn sqlite() -> Backend {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = DurableConfig::Sqlite { path: dir.path().join("hawiya.db") };
    Backend { store: store::open(&config).await.expect("open"), config, _dir: dir }
}

pub async fn postgres() -> Backend {
    let config = DurableConfig::Postgres { url: hawiya_e2e::postgres_database(), connections: 2 };
    Backend { store: store::open(&config).await.expect("open"), config, _dir: tempfile::tempdir().expect("tempdir") }
}
