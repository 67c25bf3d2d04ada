//! The `gateway` binary: reads its settings from the environment and runs
//! the application until SIGTERM/SIGINT.

use gateway::{telemetry, Application, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init();
    let settings = Settings::from_env()?;
    let app = Application::build(settings).await?;
    app.run_until_stopped().await
}
