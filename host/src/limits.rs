//! What a guest may use: a time budget per call (epoch interruption) and a
//! memory cap per instance.

use std::time::Duration;

use wasmtime::ResourceLimiter;

/// How often the epoch advances. A 1 ms tick stops a runaway guest within a
/// millisecond or two of its budget at the cost of one atomic add per tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// The most table elements an instance may have; Rust guests use a few
/// hundred for indirect calls.
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// Limits on what a guest may use.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Wall-clock budget of one decision. A decision with an RSA signature
    /// check costs a few milliseconds in wasm; 100 ms is generous for that
    /// and still far below a gateway's timeout (Envoy's default is 200 ms).
    /// Defaults to 100 ms.
    pub call_budget: Duration,
    /// Budget for loading a bundle (parsing and validating policies). Defaults to 5 s.
    pub load_budget: Duration,
    /// Linear memory an instance may grow to. The bundle, its parsed
    /// policies and the token cache fit in a few MiB. Defaults to 64 MiB.
    pub memory_bytes: usize,
    /// Idle instances kept for reuse. Defaults to 8.
    pub pool_size: usize,
    /// Whether the module's signature checks may use this host's native
    /// primitives (ring, through the WIT `crypto` import). Off, the module
    /// checks every signature itself: the same verdicts, slower. Defaults
    /// to on.
    pub native_signatures: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            call_budget: Duration::from_millis(100),
            load_budget: Duration::from_secs(5),
            memory_bytes: 64 << 20,
            pool_size: 8,
            native_signatures: true,
        }
    }
}

/// The epoch deadline, in ticks, of a budget: at least one tick.
pub(crate) fn ticks(budget: Duration) -> u64 {
    u64::try_from(budget.as_millis() / EPOCH_TICK.as_millis().max(1))
        .unwrap_or(u64::MAX)
        .max(1)
}

/// Caps an instance's memory and remembers whether it refused to grow, so a
/// failure can be reported as a memory overrun rather than a generic trap.
pub(crate) struct Limiter {
    /// The cap, in bytes.
    pub memory_bytes: usize,
    /// Set when a growth past the cap was refused.
    pub exceeded: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.exceeded = true;
            // An error (rather than `Ok(false)`) traps the guest at once
            // instead of letting its allocator abort in a less legible way.
            wasmtime::bail!("memory cap of {} bytes reached", self.memory_bytes);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
