//! SQL storage: the one module that speaks SQL. One schema, written for both
//! SQLite and PostgreSQL through sqlx's `Any` driver with bound parameters
//! only (`$n` placeholders work on both). Every write runs in a [`WriteTx`]
//! that bumps the config version first, so versions follow commit order and
//! SQLite takes its write lock before any read of the transaction.

use crate::domain::{stored_decimal, ApiKey, Instance, Model, Namespace};
use aigw_types::{
    ApiKeyConfig, ConfigSnapshot, HealthCheckConfig, InstanceConfig, Limits, ModelConfig,
    NamespaceConfig,
};
use anyhow::Context;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::error::ErrorKind;
use sqlx::{Any, AnyPool, Row, Transaction};
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

type Result<T> = std::result::Result<T, StoreError>;

// Column lists as macros so every statement is one `concat!`ed literal.
macro_rules! namespace_cols {
    () => {
        "code, name, description, enabled, max_concurrency, rpm, tpm, \
     monthly_budget_usd, created_at_ms, updated_at_ms"
    };
}
macro_rules! model_cols {
    () => {
        "name, encoding, input_price_per_1m, output_price_per_1m, \
     context_window, enabled, created_at_ms, updated_at_ms"
    };
}
macro_rules! api_key_cols {
    () => {
        "id, namespace_code, name, key_hash, prefix, allowed_models, \
     expires_at_ms, revoked_at_ms, created_at_ms"
    };
}
macro_rules! instance_cols {
    () => {
        "id, namespace_code, model, base_url, upstream_model, api_key, \
     weight, timeout_ms, enabled, health_check_path, health_check_interval_s, \
     created_at_ms, updated_at_ms"
    };
}

fn db_kind(e: &sqlx::Error) -> Option<ErrorKind> {
    match e {
        sqlx::Error::Database(d) => Some(d.kind()),
        _ => None,
    }
}

/// Which SQL server is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Readies a SQLite URL: creates the file's folder and asks for the file to
/// be created if missing (`mode=rwc`) unless the URL chose a mode.
fn prepare_sqlite_url(url: &str) -> anyhow::Result<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if !path.is_empty() && !path.starts_with(":memory:") {
        if let Some(dir) = std::path::Path::new(path).parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating database folder {}", dir.display()))?;
            }
        }
    }
    if query.split('&').any(|p| p.starts_with("mode=")) {
        Ok(url.to_string())
    } else if query.is_empty() {
        Ok(format!("{url}?mode=rwc"))
    } else {
        Ok(format!("{url}&mode=rwc"))
    }
}

/// The SQL store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
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
            (Backend::Sqlite, prepare_sqlite_url(url)?)
        } else {
            (Backend::Postgres, url.to_string())
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect(&url)
            .await
            .context("connecting to the database")?;
        if backend == Backend::Sqlite {
            // WAL lets snapshot reads run while a change commits; the mode
            // is stored in the file, so once is enough.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await
                .context("enabling WAL")?;
        }
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator
            .run(&pool)
            .await
            .context("running database migrations")?;
        Ok(Store { pool, backend })
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

    /// Everything the gateway and token-service need, at one version, read
    /// in one consistent transaction.
    pub async fn snapshot(&self, generated_at_ms: i64) -> Result<ConfigSnapshot> {
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            // One snapshot for all the reads below (the default READ
            // COMMITTED would let a change land between two SELECTs).
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .execute(&mut *tx)
                .await?;
        }
        let version: i64 = sqlx::query_scalar("SELECT version FROM config_state WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
        let namespaces = sqlx::query(concat!(
            "SELECT ",
            namespace_cols!(),
            " FROM namespaces ORDER BY code"
        ))
        .fetch_all(&mut *tx)
        .await?;
        let keys = sqlx::query(concat!(
            "SELECT ",
            api_key_cols!(),
            " FROM api_keys ORDER BY id"
        ))
        .fetch_all(&mut *tx)
        .await?;
        let models = sqlx::query(concat!(
            "SELECT ",
            model_cols!(),
            " FROM models ORDER BY name"
        ))
        .fetch_all(&mut *tx)
        .await?;
        let instances = sqlx::query(concat!(
            "SELECT ",
            instance_cols!(),
            " FROM instances ORDER BY id"
        ))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;

        let mut snap = ConfigSnapshot {
            version: version as u64,
            generated_at_ms,
            ..Default::default()
        };
        for r in &namespaces {
            let n = namespace_from_row(r)?;
            snap.namespaces.push(NamespaceConfig {
                code: n.code,
                name: n.name,
                enabled: n.enabled,
                limits: n.limits,
                monthly_budget_usd: n.monthly_budget_usd,
            });
        }
        for r in &keys {
            let k = api_key_from_row(r)?;
            snap.api_keys.push(ApiKeyConfig {
                id: k.id,
                namespace_code: k.namespace_code,
                key_hash: k.key_hash,
                prefix: k.prefix,
                revoked: k.revoked_at_ms.is_some(),
                expires_at_ms: k.expires_at_ms,
                allowed_models: k.allowed_models,
            });
        }
        for r in &models {
            let m = model_from_row(r)?;
            snap.models.push(ModelConfig {
                name: m.name,
                encoding: m.encoding,
                input_price_per_1m: m.input_price_per_1m,
                output_price_per_1m: m.output_price_per_1m,
                context_window: m.context_window,
                enabled: m.enabled,
            });
        }
        for r in &instances {
            let i = instance_from_row(r)?;
            snap.instances.push(InstanceConfig {
                id: i.id,
                namespace_code: i.namespace_code,
                model: i.model,
                base_url: i.base_url,
                upstream_model: i.upstream_model,
                api_key: i.api_key,
                weight: i.weight,
                timeout_ms: i.timeout_ms,
                enabled: i.enabled,
                health_check: i.health_check,
            });
        }
        Ok(snap)
    }

    pub async fn namespace(&self, code: &str) -> Result<Option<Namespace>> {
        let mut c = self.pool.acquire().await?;
        get_namespace(&mut c, code).await
    }

    /// Namespaces ordered by code, after `cursor` (exclusive).
    pub async fn list_namespaces(
        &self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Namespace>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            namespace_cols!(),
            " FROM namespaces WHERE code > $1 ORDER BY code LIMIT $2"
        ))
        .bind(cursor.unwrap_or(""))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(namespace_from_row).collect()
    }

    pub async fn model(&self, name: &str) -> Result<Option<Model>> {
        let mut c = self.pool.acquire().await?;
        get_model(&mut c, name).await
    }

    pub async fn list_models(&self, cursor: Option<&str>, limit: u32) -> Result<Vec<Model>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            model_cols!(),
            " FROM models WHERE name > $1 ORDER BY name LIMIT $2"
        ))
        .bind(cursor.unwrap_or(""))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(model_from_row).collect()
    }

    pub async fn api_key(&self, namespace: &str, id: &str) -> Result<Option<ApiKey>> {
        let mut c = self.pool.acquire().await?;
        get_api_key(&mut c, namespace, id).await
    }

    /// Keys of a namespace ordered by id (ids are UUIDv7: creation order).
    pub async fn list_api_keys(
        &self,
        namespace: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ApiKey>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            api_key_cols!(),
            " FROM api_keys WHERE namespace_code = $1 AND id > $2 \
             ORDER BY id LIMIT $3"
        ))
        .bind(namespace)
        .bind(cursor.unwrap_or(""))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(api_key_from_row).collect()
    }

    pub async fn instance(&self, id: &str) -> Result<Option<Instance>> {
        let mut c = self.pool.acquire().await?;
        get_instance(&mut c, id).await
    }

    /// Instances ordered by id, optionally of one namespace and/or model.
    pub async fn list_instances(
        &self,
        namespace: Option<&str>,
        model: Option<&str>,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Instance>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            instance_cols!(),
            " FROM instances WHERE id > $1 \
             AND ($2 = '' OR namespace_code = $2) AND ($3 = '' OR model = $3) \
             ORDER BY id LIMIT $4"
        ))
        .bind(cursor.unwrap_or(""))
        .bind(namespace.unwrap_or(""))
        .bind(model.unwrap_or(""))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(instance_from_row).collect()
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

    pub async fn namespace(&mut self, code: &str) -> Result<Option<Namespace>> {
        get_namespace(&mut self.tx, code).await
    }

    pub async fn insert_namespace(&mut self, n: &Namespace) -> Result<()> {
        sqlx::query(concat!(
            "INSERT INTO namespaces (",
            namespace_cols!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(&n.code)
        .bind(&n.name)
        .bind(&n.description)
        .bind(n.enabled)
        .bind(n.limits.max_concurrency.map(i64::from))
        .bind(n.limits.rpm.map(i64::from))
        .bind(n.limits.tpm.map(|v| v as i64))
        .bind(n.monthly_budget_usd.map(|d| d.to_string()))
        .bind(n.created_at_ms)
        .bind(n.updated_at_ms)
        .execute(&mut *self.tx)
        .await
        .map_err(|e| match db_kind(&e) {
            Some(ErrorKind::UniqueViolation) => StoreError::Duplicate {
                entity: "namespace",
                field: "code",
                id: n.code.clone(),
            },
            _ => e.into(),
        })?;
        Ok(())
    }

    pub async fn update_namespace(&mut self, n: &Namespace) -> Result<()> {
        sqlx::query(
            "UPDATE namespaces SET name = $2, description = $3, enabled = $4, \
             max_concurrency = $5, rpm = $6, tpm = $7, monthly_budget_usd = $8, updated_at_ms = $9 \
             WHERE code = $1",
        )
        .bind(&n.code)
        .bind(&n.name)
        .bind(&n.description)
        .bind(n.enabled)
        .bind(n.limits.max_concurrency.map(i64::from))
        .bind(n.limits.rpm.map(i64::from))
        .bind(n.limits.tpm.map(|v| v as i64))
        .bind(n.monthly_budget_usd.map(|d| d.to_string()))
        .bind(n.updated_at_ms)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Deletes a namespace. Refused while it has instances or keys that are
    /// not revoked; its revoked keys go with it. Returns false when absent.
    pub async fn delete_namespace(&mut self, code: &str) -> Result<bool> {
        let active_keys: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM api_keys WHERE namespace_code = $1 AND revoked_at_ms IS NULL",
        )
        .bind(code)
        .fetch_one(&mut *self.tx)
        .await?;
        let instances: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM instances WHERE namespace_code = $1")
                .bind(code)
                .fetch_one(&mut *self.tx)
                .await?;
        if active_keys > 0 || instances > 0 {
            return Err(StoreError::InUse {
                entity: "namespace",
                id: code.to_string(),
                by: format!(
                    "{instances} instance(s) and {active_keys} API key(s) not revoked; \
                     delete the instances and revoke the keys first"
                ),
            });
        }
        sqlx::query("DELETE FROM api_keys WHERE namespace_code = $1")
            .bind(code)
            .execute(&mut *self.tx)
            .await?;
        let res = sqlx::query("DELETE FROM namespaces WHERE code = $1")
            .bind(code)
            .execute(&mut *self.tx)
            .await
            .map_err(|e| match db_kind(&e) {
                // A reference added since the checks above (another backend
                // writer); the constraint still holds the line.
                Some(ErrorKind::ForeignKeyViolation) => StoreError::InUse {
                    entity: "namespace",
                    id: code.to_string(),
                    by: "instances or API keys".to_string(),
                },
                _ => e.into(),
            })?;
        Ok(res.rows_affected() > 0)
    }

    pub async fn model(&mut self, name: &str) -> Result<Option<Model>> {
        get_model(&mut self.tx, name).await
    }

    /// Which of `names` are not registered models.
    pub async fn unknown_models(&mut self, names: &[String]) -> Result<Vec<String>> {
        let mut missing = Vec::new();
        for n in names {
            if get_model(&mut self.tx, n).await?.is_none() {
                missing.push(n.clone());
            }
        }
        Ok(missing)
    }

    pub async fn insert_model(&mut self, m: &Model) -> Result<()> {
        sqlx::query(concat!(
            "INSERT INTO models (",
            model_cols!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(&m.name)
        .bind(&m.encoding)
        .bind(m.input_price_per_1m.map(|d| d.to_string()))
        .bind(m.output_price_per_1m.map(|d| d.to_string()))
        .bind(m.context_window.map(i64::from))
        .bind(m.enabled)
        .bind(m.created_at_ms)
        .bind(m.updated_at_ms)
        .execute(&mut *self.tx)
        .await
        .map_err(|e| match db_kind(&e) {
            Some(ErrorKind::UniqueViolation) => StoreError::Duplicate {
                entity: "model",
                field: "name",
                id: m.name.clone(),
            },
            _ => e.into(),
        })?;
        Ok(())
    }

    pub async fn update_model(&mut self, m: &Model) -> Result<()> {
        sqlx::query(
            "UPDATE models SET encoding = $2, input_price_per_1m = $3, output_price_per_1m = $4, \
             context_window = $5, enabled = $6, updated_at_ms = $7 WHERE name = $1",
        )
        .bind(&m.name)
        .bind(&m.encoding)
        .bind(m.input_price_per_1m.map(|d| d.to_string()))
        .bind(m.output_price_per_1m.map(|d| d.to_string()))
        .bind(m.context_window.map(i64::from))
        .bind(m.enabled)
        .bind(m.updated_at_ms)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Deletes a model; refused (by the foreign key) while instances use it.
    pub async fn delete_model(&mut self, name: &str) -> Result<bool> {
        let instances: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM instances WHERE model = $1")
            .bind(name)
            .fetch_one(&mut *self.tx)
            .await?;
        let in_use = |by: String| StoreError::InUse {
            entity: "model",
            id: name.to_string(),
            by,
        };
        if instances > 0 {
            return Err(in_use(format!(
                "{instances} instance(s); delete them first"
            )));
        }
        let res = sqlx::query("DELETE FROM models WHERE name = $1")
            .bind(name)
            .execute(&mut *self.tx)
            .await
            .map_err(|e| match db_kind(&e) {
                Some(ErrorKind::ForeignKeyViolation) => in_use("instances".to_string()),
                _ => e.into(),
            })?;
        Ok(res.rows_affected() > 0)
    }

    pub async fn insert_api_key(&mut self, k: &ApiKey) -> Result<()> {
        let allowed = k
            .allowed_models
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StoreError::Corrupt(e.into()))?;
        sqlx::query(concat!(
            "INSERT INTO api_keys (",
            api_key_cols!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(&k.id)
        .bind(&k.namespace_code)
        .bind(&k.name)
        .bind(&k.key_hash)
        .bind(&k.prefix)
        .bind(allowed)
        .bind(k.expires_at_ms)
        .bind(k.revoked_at_ms)
        .bind(k.created_at_ms)
        .execute(&mut *self.tx)
        .await
        .map_err(|e| match db_kind(&e) {
            Some(ErrorKind::UniqueViolation) => StoreError::Duplicate {
                entity: "API key",
                field: "id",
                id: k.id.clone(),
            },
            _ => e.into(),
        })?;
        Ok(())
    }

    /// Marks a key revoked at `at_ms`; false when it does not exist or was
    /// already revoked.
    pub async fn revoke_api_key(&mut self, namespace: &str, id: &str, at_ms: i64) -> Result<bool> {
        let res = sqlx::query(
            "UPDATE api_keys SET revoked_at_ms = $3 \
             WHERE namespace_code = $1 AND id = $2 AND revoked_at_ms IS NULL",
        )
        .bind(namespace)
        .bind(id)
        .bind(at_ms)
        .execute(&mut *self.tx)
        .await?;
        Ok(res.rows_affected() > 0)
    }

    pub async fn instance(&mut self, id: &str) -> Result<Option<Instance>> {
        get_instance(&mut self.tx, id).await
    }

    pub async fn insert_instance(&mut self, i: &Instance) -> Result<()> {
        sqlx::query(concat!(
            "INSERT INTO instances (",
            instance_cols!(),
            ") \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        ))
        .bind(&i.id)
        .bind(&i.namespace_code)
        .bind(&i.model)
        .bind(&i.base_url)
        .bind(&i.upstream_model)
        .bind(i.api_key.as_deref())
        .bind(i64::from(i.weight))
        .bind(i.timeout_ms as i64)
        .bind(i.enabled)
        .bind(i.health_check.as_ref().map(|h| h.path.clone()))
        .bind(i.health_check.as_ref().map(|h| i64::from(h.interval_s)))
        .bind(i.created_at_ms)
        .bind(i.updated_at_ms)
        .execute(&mut *self.tx)
        .await
        .map_err(|e| match db_kind(&e) {
            Some(ErrorKind::UniqueViolation) => StoreError::Duplicate {
                entity: "instance",
                field: "id",
                id: i.id.clone(),
            },
            _ => e.into(),
        })?;
        Ok(())
    }

    pub async fn update_instance(&mut self, i: &Instance) -> Result<()> {
        sqlx::query(
            "UPDATE instances SET namespace_code = $2, model = $3, base_url = $4, \
             upstream_model = $5, api_key = $6, weight = $7, timeout_ms = $8, enabled = $9, \
             health_check_path = $10, health_check_interval_s = $11, updated_at_ms = $12 \
             WHERE id = $1",
        )
        .bind(&i.id)
        .bind(&i.namespace_code)
        .bind(&i.model)
        .bind(&i.base_url)
        .bind(&i.upstream_model)
        .bind(i.api_key.as_deref())
        .bind(i64::from(i.weight))
        .bind(i.timeout_ms as i64)
        .bind(i.enabled)
        .bind(i.health_check.as_ref().map(|h| h.path.clone()))
        .bind(i.health_check.as_ref().map(|h| i64::from(h.interval_s)))
        .bind(i.updated_at_ms)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    pub async fn delete_instance(&mut self, id: &str) -> Result<bool> {
        let res = sqlx::query("DELETE FROM instances WHERE id = $1")
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        Ok(res.rows_affected() > 0)
    }
}

async fn get_namespace(c: &mut sqlx::AnyConnection, code: &str) -> Result<Option<Namespace>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        namespace_cols!(),
        " FROM namespaces WHERE code = $1"
    ))
    .bind(code)
    .fetch_optional(c)
    .await?;
    row.as_ref().map(namespace_from_row).transpose()
}

async fn get_model(c: &mut sqlx::AnyConnection, name: &str) -> Result<Option<Model>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        model_cols!(),
        " FROM models WHERE name = $1"
    ))
    .bind(name)
    .fetch_optional(c)
    .await?;
    row.as_ref().map(model_from_row).transpose()
}

async fn get_api_key(
    c: &mut sqlx::AnyConnection,
    namespace: &str,
    id: &str,
) -> Result<Option<ApiKey>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        api_key_cols!(),
        " FROM api_keys WHERE namespace_code = $1 AND id = $2"
    ))
    .bind(namespace)
    .bind(id)
    .fetch_optional(c)
    .await?;
    row.as_ref().map(api_key_from_row).transpose()
}

async fn get_instance(c: &mut sqlx::AnyConnection, id: &str) -> Result<Option<Instance>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        instance_cols!(),
        " FROM instances WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(c)
    .await?;
    row.as_ref().map(instance_from_row).transpose()
}

/// Booleans are BOOLEAN on PostgreSQL and INTEGER 0/1 on SQLite.
fn get_bool(r: &AnyRow, col: &str) -> Result<bool> {
    match r.try_get::<bool, _>(col) {
        Ok(b) => Ok(b),
        Err(_) => Ok(r.try_get::<i64, _>(col)? != 0),
    }
}

fn opt_u32(r: &AnyRow, col: &str) -> Result<Option<u32>> {
    r.try_get::<Option<i64>, _>(col)?
        .map(|v| {
            u32::try_from(v)
                .map_err(|_| StoreError::Corrupt(anyhow::anyhow!("{col} out of range: {v}")))
        })
        .transpose()
}

fn opt_decimal(r: &AnyRow, col: &str) -> Result<Option<rust_decimal::Decimal>> {
    r.try_get::<Option<String>, _>(col)?
        .map(|s| stored_decimal(&s).map_err(StoreError::Corrupt))
        .transpose()
}

fn namespace_from_row(r: &AnyRow) -> Result<Namespace> {
    Ok(Namespace {
        code: r.try_get("code")?,
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        enabled: get_bool(r, "enabled")?,
        limits: Limits {
            max_concurrency: opt_u32(r, "max_concurrency")?,
            rpm: opt_u32(r, "rpm")?,
            tpm: r.try_get::<Option<i64>, _>("tpm")?.map(|v| v.max(0) as u64),
        },
        monthly_budget_usd: opt_decimal(r, "monthly_budget_usd")?,
        created_at_ms: r.try_get("created_at_ms")?,
        updated_at_ms: r.try_get("updated_at_ms")?,
    })
}

fn model_from_row(r: &AnyRow) -> Result<Model> {
    Ok(Model {
        name: r.try_get("name")?,
        encoding: r.try_get("encoding")?,
        input_price_per_1m: opt_decimal(r, "input_price_per_1m")?,
        output_price_per_1m: opt_decimal(r, "output_price_per_1m")?,
        context_window: opt_u32(r, "context_window")?,
        enabled: get_bool(r, "enabled")?,
        created_at_ms: r.try_get("created_at_ms")?,
        updated_at_ms: r.try_get("updated_at_ms")?,
    })
}

fn api_key_from_row(r: &AnyRow) -> Result<ApiKey> {
    let allowed: Option<String> = r.try_get("allowed_models")?;
    Ok(ApiKey {
        id: r.try_get("id")?,
        namespace_code: r.try_get("namespace_code")?,
        name: r.try_get("name")?,
        key_hash: r.try_get("key_hash")?,
        prefix: r.try_get("prefix")?,
        allowed_models: allowed
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|e| StoreError::Corrupt(anyhow::Error::new(e).context("allowed_models")))?,
        expires_at_ms: r.try_get("expires_at_ms")?,
        revoked_at_ms: r.try_get("revoked_at_ms")?,
        created_at_ms: r.try_get("created_at_ms")?,
    })
}

fn instance_from_row(r: &AnyRow) -> Result<Instance> {
    let hc_path: Option<String> = r.try_get("health_check_path")?;
    let hc_interval = opt_u32(r, "health_check_interval_s")?;
    Ok(Instance {
        id: r.try_get("id")?,
        namespace_code: r.try_get("namespace_code")?,
        model: r.try_get("model")?,
        base_url: r.try_get("base_url")?,
        upstream_model: r.try_get("upstream_model")?,
        api_key: r.try_get("api_key")?,
        weight: opt_u32(r, "weight")?.unwrap_or(0),
        timeout_ms: r.try_get::<i64, _>("timeout_ms")?.max(0) as u64,
        enabled: get_bool(r, "enabled")?,
        health_check: hc_path.map(|path| HealthCheckConfig {
            path,
            interval_s: hc_interval.unwrap_or(15),
        }),
        created_at_ms: r.try_get("created_at_ms")?,
        updated_at_ms: r.try_get("updated_at_ms")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_get_create_mode() {
        let d = std::env::temp_dir().join(format!("cc-url-{}", uuid::Uuid::new_v4().simple()));
        let url = format!("sqlite://{}/x.db", d.display());
        assert_eq!(prepare_sqlite_url(&url).unwrap(), format!("{url}?mode=rwc"));
        assert!(d.exists());
        let _ = std::fs::remove_dir_all(&d);
        assert_eq!(
            prepare_sqlite_url("sqlite::memory:").unwrap(),
            "sqlite::memory:?mode=rwc"
        );
        assert_eq!(
            prepare_sqlite_url("sqlite://x.db?mode=ro").unwrap(),
            "sqlite://x.db?mode=ro"
        );
    }
}
