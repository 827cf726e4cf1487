//! Signals: the first SIGINT or SIGTERM asks every part of the agent to stop and flush; a
//! second one exits at once, after a last cleanup of what must not be left behind (the
//! demo's temporary directory).

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// Exit status after a second signal: the conventional 128 + SIGINT.
const FORCED_EXIT: i32 = 130;

/// Spawns the signal watcher and returns the token that is cancelled on the first signal.
/// `before_forced_exit` runs on a second signal, just before the process exits.
pub fn install(
    before_forced_exit: impl FnOnce() + Send + 'static,
) -> std::io::Result<CancellationToken> {
    let token = CancellationToken::new();
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let cancel = token.clone();
    tokio::spawn(async move {
        let first = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        };
        tracing::info!(
            signal = first,
            "shutting down: flushing state (a second signal exits at once)"
        );
        cancel.cancel();
        let second = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        };
        tracing::warn!(
            signal = second,
            "second signal: exiting now without flushing"
        );
        before_forced_exit();
        std::process::exit(FORCED_EXIT);
    });
    Ok(token)
}
