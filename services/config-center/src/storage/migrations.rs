//! The schema: embedded migrations per backend, and readying a SQLite URL.

use anyhow::Context;
use sqlx::AnyPool;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Runs the migrations of the backend (`sqlite` or PostgreSQL).
pub(super) async fn run(pool: &AnyPool, sqlite: bool) -> anyhow::Result<()> {
    if sqlite {
        // WAL lets snapshot reads run while a change commits; the mode
        // is stored in the file, so once is enough.
        sqlx::query("PRAGMA journal_mode = WAL")
            .execute(pool)
            .await
            .context("enabling WAL")?;
    }
    let migrator = if sqlite {
        &SQLITE_MIGRATIONS
    } else {
        &POSTGRES_MIGRATIONS
    };
    migrator
        .run(pool)
        .await
        .context("running database migrations")
}

/// Readies a SQLite URL: creates the file's folder and asks for the file to
/// be created if missing (`mode=rwc`) unless the URL chose a mode.
pub(super) fn prepare_sqlite_url(url: &str) -> anyhow::Result<String> {
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
