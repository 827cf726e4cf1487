//! `faultline run`: starts every part of the agent, waits for a signal, stops them in order.

use std::time::Duration;

use anyhow::Context;
use faultline_web::{AppState, Component, ComponentState, HealthRegistry};
use tokio::net::TcpListener;

use crate::config::Settings;
use crate::shutdown;

/// How long the parts get to stop and flush after the first signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Runs the agent until SIGINT or SIGTERM.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let stop = shutdown::install().context("cannot install the signal handlers")?;
    let (data_dir, fallback_note) = settings.prepare_data_dir()?;
    if let Some(note) = fallback_note {
        tracing::warn!("{note}");
    }

    let health = HealthRegistry::new();
    let listener = TcpListener::bind(settings.web_listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (web.listen / --listen): is another process using it?",
                settings.web_listen
            )
        })?;
    let web_addr = listener
        .local_addr()
        .context("cannot read the web listener's address")?;
    health.set(
        "web",
        Component {
            state: ComponentState::Running,
            address: Some(web_addr.to_string()),
            detail: None,
        },
    );
    health.set(
        "data_dir",
        Component {
            state: ComponentState::Running,
            address: None,
            detail: Some(data_dir.display().to_string()),
        },
    );

    let state = AppState {
        health,
        token: settings.web_token.as_deref().map(Into::into),
    };
    let app = faultline_web::router(state);
    let web_stop = stop.clone();
    let web = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(web_stop.cancelled_owned())
            .await
    });
    tracing::info!(
        dashboard = %format!("http://{web_addr}/"),
        data_dir = %data_dir.display(),
        "faultline {} running",
        env!("CARGO_PKG_VERSION")
    );

    stop.cancelled().await;
    match tokio::time::timeout(SHUTDOWN_GRACE, web).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(err))) => tracing::warn!("web server stopped with an error: {err}"),
        Ok(Err(err)) => tracing::warn!("web server task failed: {err}"),
        Err(_) => {
            tracing::warn!("web server did not stop within {SHUTDOWN_GRACE:?}; leaving anyway")
        }
    }
    tracing::info!("stopped");
    Ok(())
}
