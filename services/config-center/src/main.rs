//! The config-center binary: reads its config from the environment and runs
//! the [`config_center::Application`] until SIGTERM or SIGINT.

use config_center::{Application, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = aigw_service::Env::process();
    aigw_service::init_logging(&aigw_service::LogSettings::from_env(&env).unwrap_or_default());
    let config = match Config::from_env(&env) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "invalid configuration");
            std::process::exit(2);
        }
    };
    let app = Application::build(config).await?;
    app.run_until_stopped().await
}
