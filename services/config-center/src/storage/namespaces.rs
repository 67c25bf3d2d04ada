//! Namespaces: teams or applications, with their limits and budget.

use super::rows::{db_kind, get_bool, opt_decimal, opt_u32};
use super::{Result, Store, StoreError, WriteTx};
use crate::domain::Namespace;
use aigw_types::Limits;
use sqlx::any::AnyRow;
use sqlx::error::ErrorKind;
use sqlx::Row;

// The column list as a macro so every statement is one `concat!`ed literal.
macro_rules! namespace_cols {
    () => {
        "code, name, description, enabled, max_concurrency, rpm, tpm, \
     monthly_budget_usd, created_at_ms, updated_at_ms"
    };
}

impl Store {
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
}

impl WriteTx {
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
}

/// Every row, in key order, for the snapshot.
pub(super) async fn all(c: &mut sqlx::AnyConnection) -> Result<Vec<Namespace>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        namespace_cols!(),
        " FROM namespaces ORDER BY code"
    ))
    .fetch_all(c)
    .await?;
    rows.iter().map(namespace_from_row).collect()
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
