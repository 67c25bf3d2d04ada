//! SQL storage: the one module that speaks SQL. One schema, written for both
//! SQLite and PostgreSQL through sqlx's `Any` driver with bound parameters
//! only (`$n` placeholders work on both). Every write runs in a [`WriteTx`]
//! that bumps the config version first, so versions follow commit order and
//! SQLite takes its write lock before any read of the transaction.
//!
//! Here: the store, its transactions and versions. One module per entity
//! holds that entity's statements ([`namespaces`], [`models`],
//! [`api_keys`], [`instances`]); [`snapshot`] assembles the published
//! config from them; [`migrations`] owns the schema; [`ledger`] holds the
//! spend ledger's rows (written by `crate::ledger`, not versioned). The one
//! exception to `Any`: on PostgreSQL the ledger's batch insert binds arrays
//! and so runs on a typed pool of its own.

mod api_keys;
mod instances;
mod ledger;
mod migrations;
mod models;
mod namespaces;
mod rows;
mod snapshot;

pub use ledger::INSERT_CHUNK;

use anyhow::Context;
use sqlx::any::AnyPoolOptions;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Any, AnyPool, PgPool, Transaction};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{entity} {id:?} already exists")]
    Duplicate {
        entity: &'static str,
        field: &'static str,
        id: String,
    },
    #[error("{entity} {id:?} is still referenced by {by}")]
    InUse {
        entity: &'static str,
        id: String,
        by: String,
    },
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("stored data is invalid")]
    Corrupt(anyhow::Error),
}

pub(crate) type Result<T> = std::result::Result<T, StoreError>;

/// Which SQL server is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The SQL store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// PostgreSQL only: the ledger writer's own pool, typed, because its
    /// batch insert binds arrays, which the `Any` driver cannot.
    ledger_pg: Option<PgPool>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish()
    }
}

impl Store {
    /// Connects and runs the embedded migrations of the backend.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Store> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if url.starts_with("sqlite:") {
            (Backend::Sqlite, migrations::prepare_sqlite_url(url)?)
        } else {
            (Backend::Postgres, url.to_string())
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect(&url)
            .await
            .context("connecting to the database")?;
        migrations::run(&pool, backend == Backend::Sqlite).await?;
        // Connects on first use, so a config-center without the ledger
        // holds no connection of it.
        let ledger_pg = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(
                PgPoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(Duration::from_secs(5))
                    .connect_lazy(&url)
                    .context("reading the database URL")?,
            ),
        };
        Ok(Store {
            pool,
            backend,
            ledger_pg,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes the pool's connections (shutdown).
    pub async fn close(&self) {
        self.pool.close().await;
        if let Some(pg) = &self.ledger_pg {
            pg.close().await;
        }
    }

    /// Starts a change: a transaction whose first statement takes the next
    /// config version.
    pub async fn write(&self) -> Result<WriteTx> {
        let mut tx = self.pool.begin().await?;
        let version: i64 = sqlx::query_scalar(
            "UPDATE config_state SET version = version + 1 WHERE id = 1 RETURNING version",
        )
        .fetch_one(&mut *tx)
        .await?;
        Ok(WriteTx {
            tx,
            version: version as u64,
        })
    }

    /// The committed config version.
    pub async fn version(&self) -> Result<u64> {
        let v: i64 = sqlx::query_scalar("SELECT version FROM config_state WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(v as u64)
    }

    /// Raises the version to at least `min` (when Redis already holds a
    /// newer snapshot than this database, e.g. after the database was
    /// reset); returns the version afterwards.
    pub async fn raise_version(&self, min: u64) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE config_state SET version = $1 WHERE id = 1 AND version < $1")
            .bind(min as i64)
            .execute(&mut *tx)
            .await?;
        let v: i64 = sqlx::query_scalar("SELECT version FROM config_state WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(v as u64)
    }
}

/// A change in progress. Dropping it without [`WriteTx::commit`] rolls back
/// (and the version it took is not used).
pub struct WriteTx {
    tx: Transaction<'static, Any>,
    version: u64,
}

impl WriteTx {
    /// The version this change will have once committed.
    pub fn version(&self) -> u64 {
        self.version
    }

    pub async fn commit(self) -> Result<u64> {
        self.tx.commit().await?;
        Ok(self.version)
    }
}
