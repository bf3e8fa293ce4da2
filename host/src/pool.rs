//! Instances with a bundle loaded in them, kept for reuse: each keeps its
//! bundle and its cache of verified tokens warm. An instance that failed is
//! never reused (a trapped instance cannot be entered again).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use greenlight_types::{DenialCode, EngineStats};
use wasmtime::Store;
use wasmtime::component::{ResourceAny, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::limits::{Limiter, ticks};
use crate::{HostError, Inner, bindings, convert};

/// What a store holds: an empty WASI context and the memory limiter.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: Limiter,
    /// Whether the `crypto` import answers (else `not-available`).
    pub(crate) native_signatures: bool,
    /// Counts the `crypto` import's answers (the engine's, shared).
    pub(crate) native_checks: Arc<AtomicU64>,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// A store with the limits of `inner` applied.
pub(crate) fn new_store(inner: &Inner) -> Store<HostState> {
    let state = HostState {
        // An empty WASI context: no files, no environment, no network. The
        // guest imports WASI only because the Rust standard library does.
        wasi: WasiCtxBuilder::new().build(),
        table: ResourceTable::new(),
        limiter: Limiter {
            memory_bytes: inner.limits.memory_bytes,
            exceeded: false,
        },
        native_signatures: inner.limits.native_signatures,
        native_checks: Arc::clone(&inner.native_checks),
    };
    let mut store = Store::new(&inner.engine, state);
    store.limiter(|s| &mut s.limiter);
    store.epoch_deadline_trap();
    store
}

/// Why a call into the guest failed.
pub(crate) struct Failure {
    /// `engine-trap`, `engine-timeout` or `engine-memory-exceeded`.
    pub code: DenialCode,
    /// What happened, for a person.
    pub message: String,
}

/// Names a failed call by what the store saw: a refused memory growth, an
/// interrupt (the time budget), or another trap.
pub(crate) fn classify(e: &wasmtime::Error, store: &Store<HostState>) -> Failure {
    if store.data().limiter.exceeded {
        return Failure {
            code: DenialCode::EngineMemoryExceeded,
            message: format!(
                "the policy module ran past its memory cap of {} bytes",
                store.data().limiter.memory_bytes
            ),
        };
    }
    match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => Failure {
            code: DenialCode::EngineTimeout,
            message: "the policy module ran past its time budget".to_owned(),
        },
        Some(trap) => Failure {
            code: DenialCode::EngineTrap,
            message: format!("the policy module trapped ({trap})"),
        },
        None => Failure {
            code: DenialCode::EngineTrap,
            message: format!("the policy module failed: {e}"),
        },
    }
}

/// One instance with the bundle loaded in it.
pub(crate) struct Slot {
    store: Store<HostState>,
    bindings: bindings::Approver,
    policy: ResourceAny,
    /// The key generation this instance holds (see [`Pool::change_keys`]).
    generation: u64,
}

impl Slot {
    /// Calls into the guest with a fresh deadline of `budget`.
    pub(crate) fn call<R>(
        &mut self,
        budget: Duration,
        f: impl FnOnce(&bindings::Approver, &mut Store<HostState>, ResourceAny) -> wasmtime::Result<R>,
    ) -> Result<R, Failure> {
        self.store.set_epoch_deadline(ticks(budget));
        f(&self.bindings, &mut self.store, self.policy).map_err(|e| classify(&e, &self.store))
    }

    /// This instance's counters; zero when it cannot answer.
    fn stats(&mut self, budget: Duration) -> EngineStats {
        self.call(budget, |b, s, p| {
            b.greenlight_approval_engine().policy().call_stats(s, p)
        })
        .map(convert::stats)
        .unwrap_or_default()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The protected data (idle instances, key documents, counters) stays
    // consistent even if a holder panicked: at worst an instance is lost.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A change to one issuer's keys, replayed into every new instance.
#[derive(Clone, Debug)]
pub(crate) enum KeyChange {
    /// `set-keys` with this JWKS.
    Set(String),
    /// `withdraw-keys` with this reason.
    Withdraw(String),
}

/// The instances of one loaded bundle, and what every new one replays.
pub(crate) struct Pool {
    inner: Arc<Inner>,
    /// The bundle's files, loaded into every new instance.
    files: Vec<(String, String)>,
    /// Key changes after loading, the last per issuer, replayed into every
    /// new instance.
    keys: Mutex<Vec<(String, KeyChange)>>,
    /// Bumped, under the `keys` lock, by every key change: an instance from
    /// an older generation (one that was busy while the keys changed) is
    /// dropped instead of going back to the pool.
    generation: AtomicU64,
    /// Idle instances.
    idle: Mutex<Vec<Slot>>,
    /// The counters of instances no longer in use, so that dropping one
    /// loses none of its counts.
    retired: Mutex<EngineStats>,
}

impl Pool {
    pub(crate) fn new(inner: Arc<Inner>, files: Vec<(String, String)>) -> Self {
        Self {
            inner,
            files,
            keys: Mutex::new(Vec::new()),
            generation: AtomicU64::new(0),
            idle: Mutex::new(Vec::new()),
            retired: Mutex::new(EngineStats::default()),
        }
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// A new instance with the bundle and the current keys loaded.
    pub(crate) fn new_slot(&self) -> Result<Slot, HostError> {
        let inner = &self.inner;
        let mut store = new_store(inner);
        store.set_epoch_deadline(ticks(inner.limits.load_budget));
        let bindings = inner
            .pre
            .instantiate(&mut store)
            .map_err(|e| HostError::Instance(classify(&e, &store).message))?;
        let loaded = bindings
            .greenlight_approval_engine()
            .policy()
            .call_load(&mut store, &self.files)
            .map_err(|e| HostError::Instance(classify(&e, &store).message))?;
        let policy = loaded.map_err(|e| HostError::Bundle(convert::load_error(e)))?;
        // The key sets and their generation, read together.
        let (keys, generation) = {
            let keys = lock(&self.keys);
            (keys.clone(), self.generation.load(Ordering::SeqCst))
        };
        for (issuer, change) in &keys {
            let engine = bindings.greenlight_approval_engine().policy();
            match change {
                KeyChange::Set(jwks) => engine.call_set_keys(&mut store, policy, issuer, jwks),
                KeyChange::Withdraw(reason) => {
                    engine.call_withdraw_keys(&mut store, policy, issuer, reason)
                }
            }
            .map_err(|e| HostError::Instance(classify(&e, &store).message))?
            .map_err(|e| HostError::Bundle(convert::load_error(e)))?;
        }
        Ok(Slot {
            store,
            bindings,
            policy,
            generation,
        })
    }

    /// An idle instance, or a new one.
    pub(crate) fn take(&self) -> Result<Slot, HostError> {
        let taken = {
            let mut idle = lock(&self.idle);
            // Never one from before a key change (one may still be idle
            // between the change's bump and its emptying of the pool).
            let current = self.generation.load(Ordering::SeqCst);
            let mut stale = Vec::new();
            let mut found = None;
            while let Some(slot) = idle.pop() {
                if slot.generation == current {
                    found = Some(slot);
                    break;
                }
                stale.push(slot);
            }
            (found, stale)
        };
        let (found, mut stale) = taken;
        for s in &mut stale {
            self.retire(s);
        }
        match found {
            Some(slot) => Ok(slot),
            None => self.new_slot(),
        }
    }

    /// Returns an instance that answered; it is kept unless it holds old
    /// keys or the pool is full.
    pub(crate) fn put_back(&self, mut slot: Slot) {
        {
            let mut idle = lock(&self.idle);
            // The generation is read under the idle lock: a key change
            // bumps it before it empties the pool, so an instance either
            // sees the new generation here and is dropped, or is pushed
            // before the pool is emptied. (Read before the lock, an
            // instance with the old keys could slip in after the emptying
            // and serve them until the next change.)
            let current = self.generation.load(Ordering::SeqCst);
            if slot.generation == current && idle.len() < self.inner.limits.pool_size {
                idle.push(slot);
                return;
            }
        }
        self.retire(&mut slot);
    }

    /// Keeps the counters of an instance about to be dropped.
    fn retire(&self, slot: &mut Slot) {
        let stats = slot.stats(self.inner.limits.call_budget);
        let mut retired = lock(&self.retired);
        *retired = *retired + stats;
    }

    /// Sets or withdraws one issuer's keys in every instance, present and
    /// future. The old keys keep serving when the change is refused.
    pub(crate) fn change_keys(&self, issuer: &str, change: &KeyChange) -> Result<(), HostError> {
        // Validate on a fresh instance first, so a bad set changes nothing.
        let mut slot = self.new_slot()?;
        slot.call(self.inner.limits.call_budget, |b, s, p| {
            let engine = b.greenlight_approval_engine().policy();
            match change {
                KeyChange::Set(jwks) => engine.call_set_keys(s, p, issuer, jwks),
                KeyChange::Withdraw(reason) => engine.call_withdraw_keys(s, p, issuer, reason),
            }
        })
        .map_err(|f| HostError::Instance(f.message))?
        .map_err(|e| HostError::Bundle(convert::load_error(e)))?;
        let mut keys = lock(&self.keys);
        keys.retain(|(i, _)| i != issuer);
        keys.push((issuer.to_owned(), change.clone()));
        // The validated instance may have been built from older key sets
        // than another concurrent set_keys left: it holds exactly the sets
        // replayed into it plus this one, so it serves only if it was built
        // from the generation just replaced.
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let current = slot.generation + 1 == generation;
        slot.generation = generation;
        drop(keys);
        // Instances loaded with the old keys are dropped (idle ones now, busy
        // ones when they come back); new ones replay the set.
        let mut old = std::mem::take(&mut *lock(&self.idle));
        for s in &mut old {
            self.retire(s);
        }
        if current {
            // Kept only if no other change came meanwhile (read under the
            // idle lock, as in `put_back`).
            let mut idle = lock(&self.idle);
            if slot.generation == self.generation.load(Ordering::SeqCst) {
                idle.push(slot);
                return Ok(());
            }
        }
        self.retire(&mut slot);
        Ok(())
    }

    /// The counters of every instance this bundle had, idle or retired
    /// (an instance busy right now is counted when it comes back; one that
    /// failed is lost with its counts).
    pub(crate) fn stats(&self) -> EngineStats {
        let budget = self.inner.limits.call_budget;
        let mut total = *lock(&self.retired);
        for slot in lock(&self.idle).iter_mut() {
            total = total + slot.stats(budget);
        }
        total
    }

    /// The generations of the idle instances, for tests.
    #[cfg(test)]
    pub(crate) fn idle_generations(&self) -> Vec<u64> {
        lock(&self.idle).iter().map(|s| s.generation).collect()
    }

    /// The generation an instance holds, for tests.
    #[cfg(test)]
    pub(crate) fn generation_of(slot: &Slot) -> u64 {
        slot.generation
    }
}
