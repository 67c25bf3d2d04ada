//! The `token-service` binary: configuration from the environment, then the
//! library's [`token_service::Application`].

/// See `Cargo.toml`: measured cheaper than glibc malloc for usage batches.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    aigw_service::init_logging(
        &aigw_service::LogSettings::from_env(&aigw_service::Env::process()).unwrap_or_default(),
    );
    let config = token_service::Config::from_env()?;
    let app = token_service::Application::build(config).await?;
    app.run_until_stopped().await
}
