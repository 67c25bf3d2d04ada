//! `mock-upstream`: parses config, starts the server, exits 0 after a
//! graceful SIGTERM/SIGINT.

use mock_upstream::{Application, Config};
use tracing_subscriber::EnvFilter;

#[actix_web::main]
#[allow(clippy::disallowed_methods)] // a provider's stand-in, not one of the services
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        print!("{}", mock_upstream::config::HELP);
        return Ok(());
    }
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let config = Config::from_env_and_args(&args)?;
    let app = Application::build(config.clone())?;
    tracing::info!(
        port = app.port(),
        latency_ms = config.latency.as_millis() as u64,
        error_rate = config.error_rate,
        chunks = config.chunks,
        chunk_delay_ms = config.chunk_delay.as_millis() as u64,
        no_usage = config.no_usage,
        "mock upstream listening"
    );
    app.run_until_stopped().await?;
    tracing::info!("mock upstream stopped");
    Ok(())
}
