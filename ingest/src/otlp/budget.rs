//! Byte budgets shared by concurrent requests: how many body bytes may be held at once while
//! requests are being read, and how many decompressed bytes while they are being decoded.
//!
//! A request charges its budget as the bytes arrive (or as they are inflated), never more
//! than it actually holds, and gives everything back when it is answered. A charge that does
//! not fit is refused at once — the caller answers with the retryable error — instead of
//! waiting, so a full budget never queues anybody behind a slow sender.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// One budget of bytes, with its high-water mark since start.
pub(crate) struct ByteBudget {
    permits: Arc<Semaphore>,
    capacity: usize,
    high_water: AtomicUsize,
}

/// A charge that did not fit in the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Exhausted;

/// Bytes a request holds of a budget; given back when dropped.
#[derive(Default)]
pub(crate) struct Held(Option<OwnedSemaphorePermit>);

impl Held {
    /// Bytes held.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.0.as_ref().map_or(0, |p| p.num_permits())
    }
}

impl ByteBudget {
    /// A budget of `capacity` bytes (at most the semaphore's maximum).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.clamp(1, Semaphore::MAX_PERMITS);
        ByteBudget {
            permits: Arc::new(Semaphore::new(capacity)),
            capacity,
            high_water: AtomicUsize::new(0),
        }
    }

    /// Adds `bytes` to what `held` holds, or refuses when they do not fit right now.
    pub fn charge(&self, held: &mut Held, bytes: usize) -> Result<(), Exhausted> {
        if bytes == 0 {
            return Ok(());
        }
        let n = u32::try_from(bytes).map_err(|_| Exhausted)?;
        let permit = self
            .permits
            .clone()
            .try_acquire_many_owned(n)
            .map_err(|_| Exhausted)?;
        match &mut held.0 {
            Some(existing) => existing.merge(permit),
            None => held.0 = Some(permit),
        }
        self.high_water.fetch_max(self.in_use(), Ordering::Relaxed);
        Ok(())
    }

    /// Bytes held by all requests right now.
    pub fn in_use(&self) -> usize {
        self.capacity
            .saturating_sub(self.permits.available_permits())
    }

    /// The most bytes held at once since start.
    pub fn high_water(&self) -> usize {
        self.high_water.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_add_up_refuse_past_capacity_and_return_on_drop() {
        let budget = ByteBudget::new(100);
        let mut a = Held::default();
        budget.charge(&mut a, 60).expect("fits");
        budget.charge(&mut a, 30).expect("fits");
        assert_eq!(a.bytes(), 90);
        let mut b = Held::default();
        assert_eq!(budget.charge(&mut b, 11), Err(Exhausted));
        budget.charge(&mut b, 10).expect("the rest fits");
        assert_eq!(budget.in_use(), 100);
        drop(a);
        assert_eq!(budget.in_use(), 10);
        assert_eq!(budget.high_water(), 100);
        budget.charge(&mut b, 80).expect("room again");
    }
}
