//! The `token-service` binary: configuration from the environment, then the
//! library's [`token_service::Application`].

/// See `Cargo.toml`: measured cheaper than glibc malloc for usage batches.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = aigw_service::Env::process();
    aigw_service::init_logging(&aigw_service::LogSettings::from_env(&env).unwrap_or_default());
    let config = match token_service::Config::from_env(&env) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "invalid configuration");
            std::process::exit(2);
        }
    };
    let app = token_service::Application::build(config).await?;
    app.run_until_stopped().await
}
