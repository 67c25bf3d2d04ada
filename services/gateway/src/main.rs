//! The `gateway` binary: reads its settings from the environment and runs
//! the application until SIGTERM/SIGINT.

use gateway::{Application, Settings};

/// See `Cargo.toml`: measured cheaper per request than glibc malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One thread runs the background tasks (snapshot polling, health checks,
/// the metrics flusher): they need little CPU, and every runtime thread
/// costs a stack and an allocator heap. Requests run on the HTTP workers'
/// own threads (`GATEWAY_WORKERS`).
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let env = aigw_service::Env::process();
    aigw_service::init_logging(&aigw_service::LogSettings::from_env(&env).unwrap_or_default());
    let settings = match Settings::from_env(&env) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "invalid configuration");
            std::process::exit(2);
        }
    };
    let app = Application::build(settings).await?;
    app.run_until_stopped().await
}
