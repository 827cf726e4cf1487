//! Helpers shared by this crate's unit tests.

/// A deterministic noise source (xorshift), so a failure reproduces.
pub(crate) struct Noise(pub(crate) u64);

impl Noise {
    /// The next value in `0..1`, in steps of 1/10 000.
    pub(crate) fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % 10_000) as f64 / 10_000.0
    }
}
