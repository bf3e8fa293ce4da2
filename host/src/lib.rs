//! Embeds a Greenlight policy module (`greenlight.wasm`, or any component
//! exporting `greenlight:approval/approver`) in wasmtime, for any Rust
//! program. Its public surface is plain Rust: the types of
//! `greenlight-types` in and out.
//!
//! - The component is compiled once; the compiled artifact is cached on disk
//!   keyed by the component's SHA-256 and wasmtime's compatibility hash (its
//!   version and engine settings), so a restart maps it instead of compiling
//!   (`cache.rs`).
//! - Instances come from one `InstancePre` and are reused: each keeps its
//!   loaded bundle and its cache of verified tokens (`pool.rs`).
//! - Every call has a time budget (epoch interruption) and every instance a
//!   memory cap (`limits.rs`). A trap, an overrun or malformed output is a
//!   deny; the instance is discarded and the next call gets a fresh one.
//! - Everything the guest returns is checked before it is used (`convert.rs`).
//!
//! ```no_run
//! # fn main() -> Result<(), greenlight_host::HostError> {
//! let engine = greenlight_host::Engine::load(&std::fs::read("greenlight.wasm")?)?;
//! let policy = engine.load_bundle(vec![/* (file name, contents) */])?;
//! let request = greenlight_types::HttpRequest::default();
//! let decision = policy.evaluate_http(&request, 1_700_000_000);
//! let answer = policy.respond(&decision, "https://greenlight.example.com");
//! # Ok(()) }
//! ```

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use greenlight_types::bundle::{CONFIG_FILE, POLICY_FILE, SCHEMA_FILE};
use greenlight_types::{Denial, LoadError};
use wasmtime::Config;
use wasmtime::component::{Component, Linker};

mod cache;
mod convert;
mod crypto;
mod limits;
mod policy;
mod pool;

pub use cache::default_cache_dir;
pub use greenlight_types::Principal;
pub use limits::{EPOCH_TICK, Limits};
pub use policy::Policy;

mod bindings {
    wasmtime::component::bindgen!({
        world: "approver",
        path: "../wit",
    });
}

/// What went wrong in the host.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// When the component cannot be compiled or is not a Greenlight module.
    #[error("the component cannot be used: {0}")]
    Component(String),
    /// When the bundle was refused by the module.
    #[error("{0}")]
    Bundle(#[from] LoadError),
    /// When an instance could not be created or trapped while loading.
    #[error("the policy module failed: {0}")]
    Instance(String),
    /// When reading a file failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// What every instance of one compiled module shares.
pub(crate) struct Inner {
    engine: wasmtime::Engine,
    pre: bindings::ApproverPre<pool::HostState>,
    limits: Limits,
    /// Hex SHA-256 of the component's bytes.
    hash: String,
    /// Signature checks the `crypto` import answered (`valid` or
    /// `invalid`), across every instance.
    native_checks: Arc<AtomicU64>,
}

/// A compiled policy module, ready to load bundles.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("limits", &self.inner.limits)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Compiles (or maps from the default cache) a component with default limits.
    pub fn load(component: &[u8]) -> Result<Self, HostError> {
        Self::with_options(component, Limits::default(), default_cache_dir().as_deref())
    }

    /// Compiles a component with the given limits, caching the compiled
    /// artifact in `cache_dir` when one is given. With the environment
    /// variable `GREENLIGHT_PERF_MAP=1`, wasmtime also writes a perf map
    /// (`/tmp/perf-PID.map`) naming the module's compiled functions.
    pub fn with_options(
        component: &[u8],
        limits: Limits,
        cache_dir: Option<&Path>,
    ) -> Result<Self, HostError> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        if std::env::var_os("GREENLIGHT_PERF_MAP").is_some_and(|v| v == "1") {
            // For a profiler: wasmtime writes /tmp/perf-PID.map, so `perf
            // report` names the module's functions (BENCHMARKS.md).
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine =
            wasmtime::Engine::new(&config).map_err(|e| HostError::Component(format!("{e:#}")))?;
        let compiled = match cache_dir {
            Some(dir) => cache::compile_cached(&engine, component, dir)?,
            None => Component::new(&engine, component)
                .map_err(|e| HostError::Component(format!("{e:#}")))?,
        };
        let mut linker = Linker::<pool::HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| HostError::Component(format!("{e:#}")))?;
        bindings::Approver::add_to_linker::<_, wasmtime::component::HasSelf<_>>(
            &mut linker,
            |state| state,
        )
        .map_err(|e| HostError::Component(format!("{e:#}")))?;
        let pre = linker
            .instantiate_pre(&compiled)
            .and_then(bindings::ApproverPre::new)
            .map_err(|e| HostError::Component(format!("{e:#}")))?;
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("greenlight-epoch".to_owned())
            .spawn(move || {
                // Ends when the last Engine clone is dropped.
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })?;
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                pre,
                limits,
                hash: cache::hex_sha256(component),
                native_checks: Arc::new(AtomicU64::new(0)),
            }),
        })
    }

    /// Hex SHA-256 of the component's bytes: names the module version, as
    /// the bundle's hash names the policy version.
    pub fn component_hash(&self) -> &str {
        &self.inner.hash
    }

    /// Validates and loads a bundle in the module. A refused bundle returns
    /// every problem the module found.
    pub fn load_bundle(&self, files: Vec<(String, String)>) -> Result<Policy, HostError> {
        Policy::load(pool::Pool::new(self.inner.clone(), files))
    }

    /// How many signature checks this host's native primitive answered for
    /// the module (the WIT `crypto` import), across every instance: zero
    /// when [`Limits::native_signatures`] is off.
    pub fn native_signature_checks(&self) -> u64 {
        self.inner.native_checks.load(Ordering::Relaxed)
    }

    /// Verifies a bare JWS against one JWK inside the module (the WIT
    /// `jose.verify-compact`).
    pub fn verify_compact(&self, token: &str, jwk: &str) -> Result<Vec<u8>, Denial> {
        let mut store = pool::new_store(&self.inner);
        store.set_epoch_deadline(limits::ticks(self.inner.limits.call_budget));
        let result = self.inner.pre.instantiate(&mut store).and_then(|b| {
            b.greenlight_approval_jose()
                .call_verify_compact(&mut store, token, jwk)
        });
        match result {
            Ok(Ok(payload)) => Ok(payload),
            Ok(Err(e)) => Err(convert::denial(e.code, e.message)),
            Err(e) => {
                let f = pool::classify(&e, &store);
                Err(Denial::new(f.code, f.message))
            }
        }
    }
}

/// Reads a bundle folder into `(name, contents)` pairs: `greenlight.toml`,
/// `policy.cedar`, `schema.cedarschema` when present, and every `*.json`
/// key set at the top level. Nothing else is read, so private keys kept
/// beside a bundle (as the demo's `dev/` folder) never enter the engine.
pub fn read_bundle_dir(dir: &Path) -> std::io::Result<Vec<(String, String)>> {
    let mut files = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let wanted = matches!(name.as_str(), CONFIG_FILE | POLICY_FILE | SCHEMA_FILE)
            || name.ends_with(".json");
        if wanted && entry.file_type()?.is_file() {
            let contents = std::fs::read_to_string(entry.path()).map_err(|e| {
                std::io::Error::new(e.kind(), format!("{}: {e}", entry.path().display()))
            })?;
            files.push((name, contents));
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::Pool;

    /// An instance that was busy while the keys changed holds the old keys:
    /// it is dropped when it comes back, not pooled again.
    #[test]
    fn an_instance_busy_while_keys_change_is_not_pooled_again() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/bundle");
        let engine = Engine::load(greenlight_component::GREENLIGHT_WASM).expect("component");
        let policy = engine
            .load_bundle(read_bundle_dir(&dir).expect("bundle dir"))
            .expect("bundle");
        let pool = policy.pool();
        let busy = pool.take().expect("an instance");
        assert_eq!(Pool::generation_of(&busy), 0);
        let jwks = std::fs::read_to_string(dir.join("idp.jwks.json")).expect("jwks");
        policy
            .set_keys("https://idp.example.com", &jwks)
            .expect("keys");
        pool.put_back(busy);
        assert_eq!(
            pool.idle_generations(),
            vec![1],
            "only the instance validated with the new keys"
        );
    }
}
