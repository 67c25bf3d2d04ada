//! Models: names clients send, their encoding and prices.

use super::rows::{db_kind, get_bool, opt_decimal, opt_u32};
use super::{Result, Store, StoreError, WriteTx};
use crate::domain::Model;
use sqlx::any::AnyRow;
use sqlx::error::ErrorKind;
use sqlx::Row;

// The column list as a macro so every statement is one `concat!`ed literal.
macro_rules! model_cols {
    () => {
        "name, encoding, input_price_per_1m, output_price_per_1m, \
     context_window, enabled, created_at_ms, updated_at_ms, \
     cached_input_price_per_1m, cache_write_price_per_1m"
    };
}

impl Store {
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
}

impl WriteTx {
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
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(&m.name)
        .bind(&m.encoding)
        .bind(m.input_price_per_1m.map(|d| d.to_string()))
        .bind(m.output_price_per_1m.map(|d| d.to_string()))
        .bind(m.context_window.map(i64::from))
        .bind(m.enabled)
        .bind(m.created_at_ms)
        .bind(m.updated_at_ms)
        .bind(m.cached_input_price_per_1m.map(|d| d.to_string()))
        .bind(m.cache_write_price_per_1m.map(|d| d.to_string()))
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
             context_window = $5, enabled = $6, updated_at_ms = $7, \
             cached_input_price_per_1m = $8, cache_write_price_per_1m = $9 WHERE name = $1",
        )
        .bind(&m.name)
        .bind(&m.encoding)
        .bind(m.input_price_per_1m.map(|d| d.to_string()))
        .bind(m.output_price_per_1m.map(|d| d.to_string()))
        .bind(m.context_window.map(i64::from))
        .bind(m.enabled)
        .bind(m.updated_at_ms)
        .bind(m.cached_input_price_per_1m.map(|d| d.to_string()))
        .bind(m.cache_write_price_per_1m.map(|d| d.to_string()))
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
}

/// Every row, in key order, for the snapshot.
pub(super) async fn all(c: &mut sqlx::AnyConnection) -> Result<Vec<Model>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        model_cols!(),
        " FROM models ORDER BY name"
    ))
    .fetch_all(c)
    .await?;
    rows.iter().map(model_from_row).collect()
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

fn model_from_row(r: &AnyRow) -> Result<Model> {
    Ok(Model {
        name: r.try_get("name")?,
        encoding: r.try_get("encoding")?,
        input_price_per_1m: opt_decimal(r, "input_price_per_1m")?,
        output_price_per_1m: opt_decimal(r, "output_price_per_1m")?,
        cached_input_price_per_1m: opt_decimal(r, "cached_input_price_per_1m")?,
        cache_write_price_per_1m: opt_decimal(r, "cache_write_price_per_1m")?,
        context_window: opt_u32(r, "context_window")?,
        enabled: get_bool(r, "enabled")?,
        created_at_ms: r.try_get("created_at_ms")?,
        updated_at_ms: r.try_get("updated_at_ms")?,
    })
}
