//! API keys: stored as hashes, revoked rather than deleted.

use super::rows::db_kind;
use super::{Result, Store, StoreError, WriteTx};
use crate::domain::ApiKey;
use sqlx::any::AnyRow;
use sqlx::error::ErrorKind;
use sqlx::Row;

// The column list as a macro so every statement is one `concat!`ed literal.
macro_rules! api_key_cols {
    () => {
        "id, namespace_code, name, key_hash, prefix, allowed_models, \
     expires_at_ms, revoked_at_ms, created_at_ms"
    };
}

impl Store {
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
}

impl WriteTx {
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
}

/// Every row, in key order, for the snapshot.
pub(super) async fn all(c: &mut sqlx::AnyConnection) -> Result<Vec<ApiKey>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        api_key_cols!(),
        " FROM api_keys ORDER BY id"
    ))
    .fetch_all(c)
    .await?;
    rows.iter().map(api_key_from_row).collect()
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
