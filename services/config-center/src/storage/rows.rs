//! Reading columns the same way on both backends.

use super::{Result, StoreError};
use crate::domain::stored_decimal;
use sqlx::any::AnyRow;
use sqlx::error::ErrorKind;
use sqlx::Row;

/// The kind of a database error, when the database reported one.
pub(super) fn db_kind(e: &sqlx::Error) -> Option<ErrorKind> {
    match e {
        sqlx::Error::Database(d) => Some(d.kind()),
        _ => None,
    }
}

/// Booleans are BOOLEAN on PostgreSQL and INTEGER 0/1 on SQLite.
pub(super) fn get_bool(r: &AnyRow, col: &str) -> Result<bool> {
    match r.try_get::<bool, _>(col) {
        Ok(b) => Ok(b),
        Err(_) => Ok(r.try_get::<i64, _>(col)? != 0),
    }
}

pub(super) fn opt_u32(r: &AnyRow, col: &str) -> Result<Option<u32>> {
    r.try_get::<Option<i64>, _>(col)?
        .map(|v| {
            u32::try_from(v)
                .map_err(|_| StoreError::Corrupt(anyhow::anyhow!("{col} out of range: {v}")))
        })
        .transpose()
}

pub(super) fn opt_decimal(r: &AnyRow, col: &str) -> Result<Option<rust_decimal::Decimal>> {
    r.try_get::<Option<String>, _>(col)?
        .map(|s| stored_decimal(&s).map_err(StoreError::Corrupt))
        .transpose()
}
