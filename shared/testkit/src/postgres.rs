//! A fresh PostgreSQL database per test, dropped afterwards.

use sqlx::{Connection, Executor, PgConnection};

/// Where the admin connection goes; override with `TEST_PG_URL`.
#[allow(clippy::disallowed_methods)] // a test switch, not a service setting
fn admin_url() -> String {
    std::env::var("TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A database created for one test. Dropped (with `FORCE`) when the value is.
pub struct PgDatabase {
    pub url: String,
    name: String,
    admin: String,
}

impl PgDatabase {
    /// Creates a fresh database, or `None` when no PostgreSQL server is
    /// reachable (the caller skips and says so).
    pub async fn create() -> Option<PgDatabase> {
        let admin = admin_url();
        let mut conn = PgConnection::connect(&admin).await.ok()?;
        let name = format!("aigw_test_{}", uuid::Uuid::new_v4().simple());
        conn.execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
            .await
            .ok()?;
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        Some(PgDatabase {
            url: format!("{base}/{name}"),
            name,
            admin,
        })
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = self.name.clone();
        // Drop runs outside any runtime guarantee: use a private one on a thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    if let Ok(mut c) = PgConnection::connect(&admin).await {
                        let _ = c
                            .execute(
                                format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#)
                                    .as_str(),
                            )
                            .await;
                    }
                });
            }
        })
        .join();
    }
}
