//! The spend ledger's statements: idempotent multi-row inserts, the
//! aggregate and row queries, per-key totals, retention.
//!
//! Filters and multi-row inserts vary in shape, so these statements are
//! assembled from fixed fragments with numbered placeholders ([`Sql`]);
//! every value is bound, never written into the SQL text.

use super::rows::get_bool;
use super::{Result, Store, StoreError};
use crate::usage::{GroupBy, RowCursor, Totals, UsageFilter, UsageGroup};
use aigw_types::LedgerRow;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::{Arguments, Row};
use std::collections::HashMap;

const COLUMNS: [&str; 19] = [
    "request_id",
    "started_at_ms",
    "namespace_code",
    "api_key_id",
    "model",
    "instance_id",
    "endpoint",
    "stream",
    "status",
    "error_kind",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "estimated",
    "cost_nano_usd",
    "duration_us",
    "ttft_us",
];

/// Rows per SQLite INSERT statement: as many as SQLite's limit on bound
/// parameters (32,766) allows at 19 each, so a batch takes few statements.
pub const INSERT_CHUNK: usize = 32_766 / COLUMNS.len();

/// The sums every aggregate selects. `CAST` keeps PostgreSQL's `SUM` of a
/// BIGINT (a NUMERIC) an integer the driver reads as `i64`.
const TOTALS_SELECT: &str = "COUNT(*) AS requests, \
    CAST(COALESCE(SUM(CASE WHEN status >= 400 OR error_kind IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT) AS errors, \
    CAST(COALESCE(SUM(prompt_tokens), 0) AS BIGINT) AS prompt_tokens, \
    CAST(COALESCE(SUM(completion_tokens), 0) AS BIGINT) AS completion_tokens, \
    CAST(COALESCE(SUM(cached_tokens), 0) AS BIGINT) AS cached_tokens, \
    CAST(COALESCE(SUM(cache_write_tokens), 0) AS BIGINT) AS cache_write_tokens, \
    CAST(COALESCE(SUM(reasoning_tokens), 0) AS BIGINT) AS reasoning_tokens, \
    CAST(COALESCE(SUM(estimated), 0) AS BIGINT) AS estimated_requests, \
    CAST(COALESCE(SUM(cost_nano_usd), 0) AS BIGINT) AS cost_nano_usd";

/// A statement being assembled: fixed fragments and a placeholder per
/// bound value.
struct Sql {
    text: String,
    args: AnyArguments<'static>,
    n: usize,
    /// `$n` placeholders; else `?` (SQLite only).
    numbered: bool,
}

impl Sql {
    fn new(head: &str) -> Sql {
        Sql {
            text: head.to_string(),
            args: AnyArguments::default(),
            n: 0,
            numbered: true,
        }
    }

    /// A SQLite statement with `?` placeholders, bound in order. For
    /// statements with thousands of values: SQLite finds a numbered
    /// placeholder's name by a linear search, once per value when the
    /// statement is prepared and again when it is bound, which makes large
    /// `$n` statements quadratic.
    fn positional(head: &str) -> Sql {
        Sql {
            numbered: false,
            ..Sql::new(head)
        }
    }

    fn push(&mut self, fragment: &str) -> &mut Self {
        self.text.push_str(fragment);
        self
    }

    /// Binds `v` and writes its placeholder.
    fn bind<T>(&mut self, v: T) -> &mut Self
    where
        T: 'static + Send + sqlx::Encode<'static, sqlx::Any> + sqlx::Type<sqlx::Any>,
    {
        self.n += 1;
        if self.numbered {
            self.text.push('$');
            self.text.push_str(&self.n.to_string());
        } else {
            self.text.push('?');
        }
        // Encoding into AnyArguments only fails for types Any cannot hold.
        let _ = self.args.add(v);
        self
    }

    /// ` WHERE …` of a filter (`WHERE 1 = 1` when it is empty, so callers
    /// can go on with ` AND …`).
    fn filter(&mut self, f: &UsageFilter) -> &mut Self {
        let mut first = true;
        let mut and = |s: &mut Sql| {
            s.push(if first { " WHERE " } else { " AND " });
            first = false;
        };
        if let Some(v) = &f.namespace {
            and(self);
            self.push("namespace_code = ").bind(v.clone());
        }
        if let Some(v) = &f.key_id {
            and(self);
            self.push("api_key_id = ").bind(v.clone());
        }
        if let Some(v) = &f.model {
            and(self);
            self.push("model = ").bind(v.clone());
        }
        if let Some(v) = f.from_ms {
            and(self);
            self.push("started_at_ms >= ").bind(v);
        }
        if let Some(v) = f.to_ms {
            and(self);
            self.push("started_at_ms < ").bind(v);
        }
        if first {
            // Callers append conditions with AND.
            self.push(" WHERE 1 = 1");
        }
        self
    }
}

fn get_u64(r: &AnyRow, col: &str) -> Result<u64> {
    let v: i64 = r.try_get(col)?;
    u64::try_from(v).map_err(|_| StoreError::Corrupt(anyhow::anyhow!("{col} is negative: {v}")))
}

fn totals_from_row(r: &AnyRow) -> Result<Totals> {
    Ok(Totals {
        requests: r.try_get("requests")?,
        errors: r.try_get("errors")?,
        prompt_tokens: r.try_get("prompt_tokens")?,
        completion_tokens: r.try_get("completion_tokens")?,
        cached_tokens: r.try_get("cached_tokens")?,
        cache_write_tokens: r.try_get("cache_write_tokens")?,
        reasoning_tokens: r.try_get("reasoning_tokens")?,
        estimated_requests: r.try_get("estimated_requests")?,
        cost_nano_usd: r.try_get("cost_nano_usd")?,
    })
}

fn row_from(r: &AnyRow) -> Result<LedgerRow> {
    let status: i64 = r.try_get("status")?;
    Ok(LedgerRow {
        request_id: r.try_get("request_id")?,
        started_at_ms: r.try_get("started_at_ms")?,
        namespace_code: r.try_get("namespace_code")?,
        api_key_id: r.try_get("api_key_id")?,
        model: r.try_get("model")?,
        instance_id: r.try_get("instance_id")?,
        endpoint: r.try_get("endpoint")?,
        stream: get_bool(r, "stream")?,
        status: u16::try_from(status)
            .map_err(|_| StoreError::Corrupt(anyhow::anyhow!("status out of range")))?,
        error_kind: r.try_get("error_kind")?,
        prompt_tokens: get_u64(r, "prompt_tokens")?,
        completion_tokens: get_u64(r, "completion_tokens")?,
        cached_tokens: get_u64(r, "cached_tokens")?,
        cache_write_tokens: get_u64(r, "cache_write_tokens")?,
        reasoning_tokens: get_u64(r, "reasoning_tokens")?,
        estimated: get_bool(r, "estimated")?,
        cost_nano_usd: get_u64(r, "cost_nano_usd")?,
        duration_us: get_u64(r, "duration_us")?,
        ttft_us: r
            .try_get::<Option<i64>, _>("ttft_us")?
            .map(|v| v.max(0) as u64),
    })
}

/// Values past `i64` (never produced by the token-service) are stored
/// saturated rather than failing a whole batch.
fn db_int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn group_column(g: GroupBy) -> &'static str {
    match g {
        GroupBy::Namespace => "namespace_code",
        GroupBy::Key => "api_key_id",
        GroupBy::Model => "model",
        // Integer division: the same on both engines for BIGINT.
        GroupBy::Day => "(started_at_ms / 86400000) * 86400000",
        GroupBy::Hour => "(started_at_ms / 3600000) * 3600000",
    }
}

fn group_alias(g: GroupBy) -> &'static str {
    match g {
        GroupBy::Namespace => "g_namespace",
        GroupBy::Key => "g_key",
        GroupBy::Model => "g_model",
        GroupBy::Day => "g_day",
        GroupBy::Hour => "g_hour",
    }
}

/// The whole batch in one statement on PostgreSQL: each column bound as
/// one array and unnested into rows. Its text does not depend on the
/// batch's size, so each connection prepares it once, and the server
/// parses 19 binary arrays instead of 19 parameters per row.
const PG_INSERT: &str = "INSERT INTO usage_ledger (\
    request_id, started_at_ms, namespace_code, api_key_id, model, instance_id, \
    endpoint, stream, status, error_kind, prompt_tokens, completion_tokens, \
    cached_tokens, cache_write_tokens, reasoning_tokens, estimated, cost_nano_usd, \
    duration_us, ttft_us) \
    SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], \
    $6::text[], $7::text[], $8::bigint[], $9::bigint[], $10::text[], $11::bigint[], \
    $12::bigint[], $13::bigint[], $14::bigint[], $15::bigint[], $16::bigint[], \
    $17::bigint[], $18::bigint[], $19::bigint[]) \
    ON CONFLICT (request_id) DO NOTHING";

/// One column of a batch of rows, as the array [`PG_INSERT`] binds.
fn column<'a, T>(rows: &'a [LedgerRow], f: impl Fn(&'a LedgerRow) -> T) -> Vec<T> {
    rows.iter().map(f).collect()
}

impl Store {
    /// Inserts rows, ignoring those whose request id is already stored,
    /// atomically; returns how many were new. Either every row is stored
    /// (or was before) or, on error, none of this call's. The rows' request
    /// ids must be distinct (one statement cannot insert a key twice).
    pub async fn insert_ledger_rows(&self, rows: &[LedgerRow]) -> Result<u64> {
        match &self.ledger_pg {
            Some(pg) => insert_ledger_rows_pg(pg, rows).await,
            None => self.insert_ledger_rows_values(rows).await,
        }
    }

    /// SQLite: multi-row `INSERT … VALUES` statements of [`INSERT_CHUNK`]
    /// rows in one transaction.
    async fn insert_ledger_rows_values(&self, rows: &[LedgerRow]) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let mut inserted = 0;
        for chunk in rows.chunks(INSERT_CHUNK) {
            let mut sql = Sql::positional("INSERT INTO usage_ledger (");
            sql.push(&COLUMNS.join(", ")).push(") VALUES ");
            for (i, r) in chunk.iter().enumerate() {
                sql.push(if i == 0 { "(" } else { ", (" });
                sql.bind(r.request_id.clone())
                    .push(", ")
                    .bind(r.started_at_ms)
                    .push(", ")
                    .bind(r.namespace_code.clone())
                    .push(", ")
                    .bind(r.api_key_id.clone())
                    .push(", ")
                    .bind(r.model.clone())
                    .push(", ")
                    .bind(r.instance_id.clone())
                    .push(", ")
                    .bind(r.endpoint.clone())
                    .push(", ")
                    .bind(i64::from(r.stream))
                    .push(", ")
                    .bind(i64::from(r.status))
                    .push(", ")
                    .bind(r.error_kind.clone())
                    .push(", ")
                    .bind(db_int(r.prompt_tokens))
                    .push(", ")
                    .bind(db_int(r.completion_tokens))
                    .push(", ")
                    .bind(db_int(r.cached_tokens))
                    .push(", ")
                    .bind(db_int(r.cache_write_tokens))
                    .push(", ")
                    .bind(db_int(r.reasoning_tokens))
                    .push(", ")
                    .bind(i64::from(r.estimated))
                    .push(", ")
                    .bind(db_int(r.cost_nano_usd))
                    .push(", ")
                    .bind(db_int(r.duration_us))
                    .push(", ")
                    .bind(r.ttft_us.map(db_int))
                    .push(")");
            }
            sql.push(" ON CONFLICT (request_id) DO NOTHING");
            let res = sqlx::query_with(&sql.text, sql.args)
                .execute(&mut *tx)
                .await?;
            inserted += res.rows_affected();
        }
        tx.commit().await?;
        Ok(inserted)
    }

    /// Totals of the rows matching `filter`, one group per distinct value
    /// of the `group_by` dimensions (ordered by them), at most `max_groups`
    /// (plus one, so the caller can tell there were more). No dimension:
    /// one group of everything.
    pub async fn usage_totals(
        &self,
        filter: &UsageFilter,
        group_by: &[GroupBy],
        max_groups: u32,
    ) -> Result<Vec<UsageGroup>> {
        let mut sql = Sql::new("SELECT ");
        for g in group_by {
            sql.push(group_column(*g))
                .push(" AS ")
                .push(group_alias(*g))
                .push(", ");
        }
        sql.push(TOTALS_SELECT).push(" FROM usage_ledger");
        sql.filter(filter);
        if !group_by.is_empty() {
            let cols: Vec<&str> = group_by.iter().map(|g| group_alias(*g)).collect();
            sql.push(" GROUP BY ")
                .push(&cols.join(", "))
                .push(" ORDER BY ")
                .push(&cols.join(", "))
                .push(" LIMIT ")
                .bind(i64::from(max_groups) + 1);
        }
        let rows = sqlx::query_with(&sql.text, sql.args)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let mut g = UsageGroup {
                    totals: totals_from_row(r)?,
                    ..UsageGroup::default()
                };
                for d in group_by {
                    let a = group_alias(*d);
                    match d {
                        GroupBy::Namespace => g.namespace = r.try_get(a)?,
                        GroupBy::Key => g.key_id = r.try_get(a)?,
                        GroupBy::Model => g.model = r.try_get(a)?,
                        GroupBy::Day => g.day_ms = r.try_get(a)?,
                        GroupBy::Hour => g.hour_ms = r.try_get(a)?,
                    }
                }
                Ok(g)
            })
            .collect()
    }

    /// Rows matching `filter`, newest first (ties by request id,
    /// descending), starting after `cursor`; at most `limit`.
    pub async fn usage_rows(
        &self,
        filter: &UsageFilter,
        cursor: Option<&RowCursor>,
        limit: u32,
    ) -> Result<Vec<LedgerRow>> {
        let mut sql = Sql::new("SELECT ");
        sql.push(&COLUMNS.join(", ")).push(" FROM usage_ledger");
        sql.filter(filter);
        if let Some(c) = cursor {
            sql.push(" AND (started_at_ms < ")
                .bind(c.started_at_ms)
                .push(" OR (started_at_ms = ")
                .bind(c.started_at_ms)
                .push(" AND request_id < ")
                .bind(c.request_id.clone())
                .push("))");
        }
        sql.push(" ORDER BY started_at_ms DESC, request_id DESC LIMIT ")
            .bind(i64::from(limit));
        let rows = sqlx::query_with(&sql.text, sql.args)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(row_from).collect()
    }

    /// All-time totals per API key of a namespace, for the given keys.
    pub async fn key_totals(
        &self,
        namespace: &str,
        key_ids: &[String],
    ) -> Result<HashMap<String, Totals>> {
        if key_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut sql = Sql::new("SELECT api_key_id, ");
        sql.push(TOTALS_SELECT)
            .push(" FROM usage_ledger WHERE namespace_code = ")
            .bind(namespace.to_string())
            .push(" AND api_key_id IN (");
        for (i, id) in key_ids.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.bind(id.clone());
        }
        sql.push(") GROUP BY api_key_id");
        let rows = sqlx::query_with(&sql.text, sql.args)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("api_key_id")?, totals_from_row(r)?)))
            .collect()
    }

    /// Deletes up to `batch` rows older than `before_ms` (oldest first);
    /// returns how many. Each call is one short transaction, so writers
    /// wait at most for one batch.
    pub async fn delete_ledger_before(&self, before_ms: i64, batch: u32) -> Result<u64> {
        let res = sqlx::query(
            "DELETE FROM usage_ledger WHERE request_id IN (\
             SELECT request_id FROM usage_ledger WHERE started_at_ms < $1 \
             ORDER BY started_at_ms LIMIT $2)",
        )
        .bind(before_ms)
        .bind(i64::from(batch))
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected())
    }
}

/// PostgreSQL: the batch as one `INSERT … SELECT FROM UNNEST(…)` statement
/// (its own transaction).
async fn insert_ledger_rows_pg(pg: &sqlx::PgPool, rows: &[LedgerRow]) -> Result<u64> {
    if rows.is_empty() {
        return Ok(0);
    }
    let res = sqlx::query(PG_INSERT)
        .bind(column(rows, |r| r.request_id.as_str()))
        .bind(column(rows, |r| r.started_at_ms))
        .bind(column(rows, |r| r.namespace_code.as_str()))
        .bind(column(rows, |r| r.api_key_id.as_deref()))
        .bind(column(rows, |r| r.model.as_str()))
        .bind(column(rows, |r| r.instance_id.as_deref()))
        .bind(column(rows, |r| r.endpoint.as_str()))
        .bind(column(rows, |r| i64::from(r.stream)))
        .bind(column(rows, |r| i64::from(r.status)))
        .bind(column(rows, |r| r.error_kind.as_deref()))
        .bind(column(rows, |r| db_int(r.prompt_tokens)))
        .bind(column(rows, |r| db_int(r.completion_tokens)))
        .bind(column(rows, |r| db_int(r.cached_tokens)))
        .bind(column(rows, |r| db_int(r.cache_write_tokens)))
        .bind(column(rows, |r| db_int(r.reasoning_tokens)))
        .bind(column(rows, |r| i64::from(r.estimated)))
        .bind(column(rows, |r| db_int(r.cost_nano_usd)))
        .bind(column(rows, |r| db_int(r.duration_us)))
        .bind(column(rows, |r| r.ttft_us.map(db_int)))
        .execute(pg)
        .await?;
    Ok(res.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_postgres_insert_names_every_column_in_order() {
        assert!(PG_INSERT.contains(&format!("usage_ledger ({}) SELECT", COLUMNS.join(", "))));
        assert!(PG_INSERT.contains(&format!("${}::", COLUMNS.len())));
        assert!(!PG_INSERT.contains(&format!("${}::", COLUMNS.len() + 1)));
    }
}
