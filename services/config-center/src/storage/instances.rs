//! Upstream instances: where a namespace's model is served.

use super::rows::{db_kind, get_bool, opt_u32};
use super::{Result, Store, StoreError, WriteTx};
use crate::domain::Instance;
use aigw_types::{HealthCheckConfig, Provider};
use sqlx::any::AnyRow;
use sqlx::error::ErrorKind;
use sqlx::Row;

// The column list as a macro so every statement is one `concat!`ed literal.
macro_rules! instance_cols {
    () => {
        "id, namespace_code, model, base_url, upstream_model, api_key, \
     weight, timeout_ms, enabled, health_check_path, health_check_interval_s, \
     created_at_ms, updated_at_ms, retry_unknown_outcome, openai_organization, \
     openai_project, provider, azure_deployment, api_version"
    };
}

impl Store {
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

impl WriteTx {
    pub async fn instance(&mut self, id: &str) -> Result<Option<Instance>> {
        get_instance(&mut self.tx, id).await
    }

    pub async fn insert_instance(&mut self, i: &Instance) -> Result<()> {
        sqlx::query(concat!(
            "INSERT INTO instances (",
            instance_cols!(),
            ") \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)"
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
        .bind(i.retry_unknown_outcome)
        .bind(i.openai_organization.as_deref())
        .bind(i.openai_project.as_deref())
        .bind(i.provider.as_str())
        .bind(i.azure_deployment.as_deref())
        .bind(i.api_version.as_deref())
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
             health_check_path = $10, health_check_interval_s = $11, updated_at_ms = $12, \
             retry_unknown_outcome = $13, openai_organization = $14, openai_project = $15, \
             provider = $16, azure_deployment = $17, api_version = $18 WHERE id = $1",
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
        .bind(i.retry_unknown_outcome)
        .bind(i.openai_organization.as_deref())
        .bind(i.openai_project.as_deref())
        .bind(i.provider.as_str())
        .bind(i.azure_deployment.as_deref())
        .bind(i.api_version.as_deref())
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

/// Every row, in key order, for the snapshot.
pub(super) async fn all(c: &mut sqlx::AnyConnection) -> Result<Vec<Instance>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        instance_cols!(),
        " FROM instances ORDER BY id"
    ))
    .fetch_all(c)
    .await?;
    rows.iter().map(instance_from_row).collect()
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

fn instance_from_row(r: &AnyRow) -> Result<Instance> {
    let provider: String = r.try_get("provider")?;
    let provider = Provider::parse(&provider).ok_or_else(|| {
        StoreError::Corrupt(anyhow::anyhow!("stored provider {provider:?} is unknown"))
    })?;
    let hc_path: Option<String> = r.try_get("health_check_path")?;
    let hc_interval = opt_u32(r, "health_check_interval_s")?;
    Ok(Instance {
        id: r.try_get("id")?,
        namespace_code: r.try_get("namespace_code")?,
        model: r.try_get("model")?,
        provider,
        base_url: r.try_get("base_url")?,
        upstream_model: r.try_get("upstream_model")?,
        api_key: r.try_get("api_key")?,
        azure_deployment: r.try_get("azure_deployment")?,
        api_version: r.try_get("api_version")?,
        weight: opt_u32(r, "weight")?.unwrap_or(0),
        timeout_ms: r.try_get::<i64, _>("timeout_ms")?.max(0) as u64,
        enabled: get_bool(r, "enabled")?,
        health_check: hc_path.map(|path| HealthCheckConfig {
            path,
            interval_s: hc_interval.unwrap_or(15),
        }),
        retry_unknown_outcome: get_bool(r, "retry_unknown_outcome")?,
        openai_organization: r.try_get("openai_organization")?,
        openai_project: r.try_get("openai_project")?,
        created_at_ms: r.try_get("created_at_ms")?,
        updated_at_ms: r.try_get("updated_at_ms")?,
    })
}
