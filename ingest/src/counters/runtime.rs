//! The agent's own tokio runtime, counted like a service's goroutines: faultline watches itself.
//!
//! Only the stable parts of `tokio::runtime::RuntimeMetrics` are used (workers, alive tasks,
//! global queue depth, per-worker busy time), so no `tokio_unstable` build flag is needed.

use serde::Serialize;

/// The runtime's counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RuntimeCounters {
    /// Worker threads.
    pub workers: usize,
    /// Tasks spawned and not yet finished.
    pub alive_tasks: usize,
    /// Tasks waiting in the global (injection) queue.
    pub global_queue_depth: usize,
    /// Time all workers spent busy since the runtime started, in seconds.
    pub busy_seconds_total: f64,
}

impl RuntimeCounters {
    /// The counters of the runtime `handle` belongs to.
    pub fn read(handle: &tokio::runtime::Handle) -> RuntimeCounters {
        let metrics = handle.metrics();
        let workers = metrics.num_workers();
        let busy_seconds_total = (0..workers)
            .map(|w| metrics.worker_total_busy_duration(w).as_secs_f64())
            .sum();
        RuntimeCounters {
            workers,
            alive_tasks: metrics.num_alive_tasks(),
            global_queue_depth: metrics.global_queue_depth(),
            busy_seconds_total,
        }
    }

    /// The counters of the runtime this is called from; `None` outside a runtime.
    pub fn current() -> Option<RuntimeCounters> {
        tokio::runtime::Handle::try_current()
            .ok()
            .map(|h| RuntimeCounters::read(&h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn counts_alive_tasks() {
        let before = RuntimeCounters::current()
            .map(|c| c.alive_tasks)
            .unwrap_or(0);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = rx.await;
        });
        let during = RuntimeCounters::current();
        assert_eq!(during.map(|c| c.workers), Some(2));
        assert_eq!(during.map(|c| c.alive_tasks), Some(before + 1));
        let _ = tx.send(());
        let _ = task.await;
        assert!(RuntimeCounters::current().is_some());
    }
}
