//! Embeds a Greenlight policy module (`greenlight.wasm`, or any component
//! exporting `greenlight:approval/approver`) in wasmtime, for any Rust
//! program.
//!
//! - The component is compiled once; the compiled artifact is cached on disk
//!   keyed by the component's SHA-256 and wasmtime's compatibility hash (its
//!   version and engine settings), so a restart maps it instead of compiling.
//! - Instances come from one `InstancePre` and are reused: each keeps its
//!   loaded bundle and its cache of verified tokens.
//! - Every call has a time budget (epoch interruption) and every instance a
//!   memory cap (a `ResourceLimiter`). A trap, an overrun or malformed output is a
//!   deny; the instance is discarded and the next call gets a fresh one.
//!
//! ```no_run
//! # fn main() -> Result<(), greenlight_host::HostError> {
//! let engine = greenlight_host::Engine::load(&std::fs::read("greenlight.wasm")?)?;
//! let policy = engine.load_bundle(vec![/* (file name, contents) */])?;
//! let request = greenlight_core::HttpRequest::default();
//! let decision = policy.evaluate_http(&request, 1_700_000_000);
//! # Ok(()) }
//! ```

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use greenlight_core::policy::Principal;
use greenlight_core::{
    AccessRequest, Allowance, Challenge, Decision, Denial, DenialCode, GrantMode, HttpRequest,
    LoadError, Obligation, Problem, ProblemKind, SingleUse, Verdict,
};
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker, ResourceAny, ResourceTable};
use wasmtime::{Config, ResourceLimiter, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

mod bindings {
    wasmtime::component::bindgen!({
        world: "approver",
        path: "../wit",
    });
}

use bindings::exports::greenlight::approval::types as wit;

/// How often the epoch advances. A 1 ms tick stops a runaway guest within a
/// millisecond or two of its budget at the cost of one atomic add per tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

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
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            call_budget: Duration::from_millis(100),
            load_budget: Duration::from_secs(5),
            memory_bytes: 64 << 20,
            pool_size: 8,
        }
    }
}

/// The largest value the host accepts from a guest for any one string.
const MAX_GUEST_STRING: usize = 64 * 1024;
/// The most list entries (reasons, headers, approvers) accepted from a guest.
const MAX_GUEST_LIST: usize = 64;

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

/// The most table elements an instance may have; Rust guests use a few
/// hundred for indirect calls.
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// Caps an instance's memory and remembers whether it refused to grow, so a
/// failure can be reported as a memory overrun rather than a generic trap.
struct Limiter {
    memory_bytes: usize,
    exceeded: bool,
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

struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: Limiter,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

struct Inner {
    engine: wasmtime::Engine,
    pre: bindings::ApproverPre<HostState>,
    limits: Limits,
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

/// The default artifact cache: `$GREENLIGHT_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/greenlight`, else `~/.cache/greenlight`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("GREENLIGHT_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(d).join("greenlight"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("greenlight"))
}

fn wasmtime_config() -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config
}

impl Engine {
    /// Compiles (or maps from the default cache) a component with default limits.
    pub fn load(component: &[u8]) -> Result<Self, HostError> {
        Self::with_options(component, Limits::default(), default_cache_dir().as_deref())
    }

    /// Compiles a component with the given limits, caching the compiled
    /// artifact in `cache_dir` when one is given.
    pub fn with_options(
        component: &[u8],
        limits: Limits,
        cache_dir: Option<&Path>,
    ) -> Result<Self, HostError> {
        let engine = wasmtime::Engine::new(&wasmtime_config())
            .map_err(|e| HostError::Component(format!("{e:#}")))?;
        let compiled = match cache_dir {
            Some(dir) => compile_cached(&engine, component, dir)?,
            None => Component::new(&engine, component)
                .map_err(|e| HostError::Component(format!("{e:#}")))?,
        };
        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
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
            }),
        })
    }

    /// Validates and loads a bundle in the module. A refused bundle returns
    /// every problem the module found.
    pub fn load_bundle(&self, files: Vec<(String, String)>) -> Result<Policy, HostError> {
        let policy = Policy {
            inner: self.inner.clone(),
            files: Arc::new(files),
            keys: Arc::new(Mutex::new(Vec::new())),
            generation: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            pool: Arc::new(Mutex::new(Vec::new())),
            hash: String::new(),
        };
        let mut slot = policy.new_slot()?;
        let hash = slot
            .call(
                &self.inner.limits,
                self.inner.limits.call_budget,
                |b, s, p| {
                    b.greenlight_approval_engine()
                        .policy()
                        .call_policy_hash(s, p)
                },
            )
            .map_err(|f| HostError::Instance(f.message))?;
        policy.put_back(slot);
        Ok(Policy { hash, ..policy })
    }

    /// Verifies a bare JWS against one JWK inside the module (the WIT
    /// `jose.verify-compact`).
    pub fn verify_compact(&self, token: &str, jwk: &str) -> Result<Vec<u8>, Denial> {
        let mut store = new_store(&self.inner);
        store.set_epoch_deadline(ticks(self.inner.limits.call_budget));
        let result = self.inner.pre.instantiate(&mut store).and_then(|b| {
            b.greenlight_approval_jose()
                .call_verify_compact(&mut store, token, jwk)
        });
        match result {
            Ok(Ok(payload)) => Ok(payload),
            Ok(Err(e)) => Err(Denial {
                code: denial_code(e.code),
                message: e.message,
            }),
            Err(e) => Err(classify(&e, &store).into_denial()),
        }
    }
}

fn ticks(budget: Duration) -> u64 {
    (budget.as_millis() / EPOCH_TICK.as_millis().max(1)).max(1) as u64
}

fn new_store(inner: &Inner) -> Store<HostState> {
    let state = HostState {
        // An empty WASI context: no files, no environment, no network. The
        // guest imports WASI only because the Rust standard library does.
        wasi: WasiCtxBuilder::new().build(),
        table: ResourceTable::new(),
        limiter: Limiter {
            memory_bytes: inner.limits.memory_bytes,
            exceeded: false,
        },
    };
    let mut store = Store::new(&inner.engine, state);
    store.limiter(|s| &mut s.limiter);
    store.epoch_deadline_trap();
    store
}

fn compile_cached(
    engine: &wasmtime::Engine,
    component: &[u8],
    dir: &Path,
) -> Result<Component, HostError> {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let digest: String = Sha256::digest(component)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    // The compatibility hash covers wasmtime's version and every engine
    // setting that affects compiled code (epoch interruption included).
    let path = dir.join(format!("{digest}-{:016x}.cwasm", hasher.finish()));
    if path.exists() {
        // SAFETY: the file is an artifact this host wrote itself with
        // `Component::serialize` for this exact wasmtime build and engine
        // configuration (both are in its name) into a directory it created
        // for its own cache; wasmtime re-checks the version and settings
        // stored in the artifact header before using it.
        #[expect(
            unsafe_code,
            reason = "mapping a precompiled artifact is unsafe in wasmtime's API"
        )]
        let loaded = unsafe { Component::deserialize_file(engine, &path) };
        match loaded {
            Ok(c) => return Ok(c),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring an unusable cached artifact")
            }
        }
    }
    let compiled =
        Component::new(engine, component).map_err(|e| HostError::Component(format!("{e:#}")))?;
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let bytes = compiled
            .serialize()
            .map_err(|e| std::io::Error::other(format!("{e:#}")))?;
        // Write then rename, so a concurrent reader never maps half a file.
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, &path)
    };
    if let Err(e) = write() {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot cache the compiled component");
    }
    Ok(compiled)
}

/// One instance with the bundle loaded in it.
struct Slot {
    store: Store<HostState>,
    bindings: bindings::Approver,
    policy: ResourceAny,
    /// The key generation this instance holds (see `Policy::set_keys`).
    generation: u64,
}

/// Why a call into the guest failed.
struct Failure {
    code: DenialCode,
    message: String,
}

impl Failure {
    fn into_denial(self) -> Denial {
        Denial {
            code: self.code,
            message: self.message,
        }
    }
}

fn classify(e: &wasmtime::Error, store: &Store<HostState>) -> Failure {
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

impl Slot {
    fn call<R>(
        &mut self,
        _limits: &Limits,
        budget: Duration,
        f: impl FnOnce(&bindings::Approver, &mut Store<HostState>, ResourceAny) -> wasmtime::Result<R>,
    ) -> Result<R, Failure> {
        self.store.set_epoch_deadline(ticks(budget));
        f(&self.bindings, &mut self.store, self.policy).map_err(|e| classify(&e, &self.store))
    }
}

/// A bundle loaded in the policy module, answering requests. Cheap to
/// clone; clones share the instance pool.
#[derive(Clone)]
pub struct Policy {
    inner: Arc<Inner>,
    files: Arc<Vec<(String, String)>>,
    /// Keys set after loading, replayed into every new instance.
    keys: Arc<Mutex<Vec<(String, String)>>>,
    /// Bumped, under the `keys` lock, by every `set_keys`: an instance from
    /// an older generation (one that was busy while the keys changed) is
    /// dropped instead of going back to the pool.
    generation: Arc<std::sync::atomic::AtomicU64>,
    pool: Arc<Mutex<Vec<Slot>>>,
    hash: String,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("policy_hash", &self.hash)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The protected data (idle instances, key documents) stays consistent
    // even if a holder panicked: at worst an instance is lost.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Policy {
    /// The bundle's hash, as reported in every decision.
    pub fn policy_hash(&self) -> &str {
        &self.hash
    }

    fn new_slot(&self) -> Result<Slot, HostError> {
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
        let policy = loaded.map_err(|e| HostError::Bundle(load_error(e)))?;
        // The key sets and their generation, read together.
        let (keys, generation) = {
            let keys = lock(&self.keys);
            (
                keys.clone(),
                self.generation.load(std::sync::atomic::Ordering::SeqCst),
            )
        };
        for (issuer, jwks) in &keys {
            bindings
                .greenlight_approval_engine()
                .policy()
                .call_set_keys(&mut store, policy, issuer, jwks)
                .map_err(|e| HostError::Instance(classify(&e, &store).message))?
                .map_err(|e| HostError::Bundle(load_error(e)))?;
        }
        Ok(Slot {
            store,
            bindings,
            policy,
            generation,
        })
    }

    fn take_slot(&self) -> Result<Slot, HostError> {
        match lock(&self.pool).pop() {
            Some(slot) => Ok(slot),
            None => self.new_slot(),
        }
    }

    fn put_back(&self, slot: Slot) {
        let mut pool = lock(&self.pool);
        let current = self.generation.load(std::sync::atomic::Ordering::SeqCst);
        if slot.generation == current && pool.len() < self.inner.limits.pool_size {
            pool.push(slot);
        }
    }

    /// Replaces one issuer's keys (`greenlight` for action tokens) in every
    /// instance, present and future. The old keys keep serving when the
    /// new set is refused.
    pub fn set_keys(&self, issuer: &str, jwks: &str) -> Result<(), HostError> {
        // Validate on a fresh instance first, so a bad set changes nothing.
        let mut slot = self.new_slot()?;
        slot.call(
            &self.inner.limits,
            self.inner.limits.call_budget,
            |b, s, p| {
                b.greenlight_approval_engine()
                    .policy()
                    .call_set_keys(s, p, issuer, jwks)
            },
        )
        .map_err(|f| HostError::Instance(f.message))?
        .map_err(|e| HostError::Bundle(load_error(e)))?;
        let mut keys = lock(&self.keys);
        keys.retain(|(i, _)| i != issuer);
        keys.push((issuer.to_owned(), jwks.to_owned()));
        // The validated instance may have been built from older key sets
        // than another concurrent set_keys left: it holds exactly the sets
        // replayed into it plus this one, so it serves only if it was built
        // from the generation just replaced.
        let generation = self
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        let current = slot.generation + 1 == generation;
        slot.generation = generation;
        drop(keys);
        // Instances loaded with the old keys are dropped (idle ones now, busy
        // ones when they come back); new ones replay the set.
        let mut pool = lock(&self.pool);
        pool.clear();
        if current {
            pool.push(slot);
        }
        Ok(())
    }

    fn run(
        &self,
        f: impl FnOnce(
            &bindings::Approver,
            &mut Store<HostState>,
            ResourceAny,
        ) -> wasmtime::Result<wit::Decision>,
    ) -> Decision {
        let mut slot = match self.take_slot() {
            Ok(s) => s,
            Err(e) => {
                return Decision::deny(
                    DenialCode::EngineUnavailable,
                    format!("no policy instance is available: {e}"),
                    &self.hash,
                );
            }
        };
        match slot.call(&self.inner.limits, self.inner.limits.call_budget, f) {
            Ok(d) => {
                self.put_back(slot);
                match decision(d) {
                    Ok(d) => d,
                    Err(why) => Decision::deny(
                        DenialCode::EngineInvalidOutput,
                        format!("the policy module returned a malformed decision: {why}"),
                        &self.hash,
                    ),
                }
            }
            // The instance may be corrupt (a trapped instance cannot be
            // entered again): drop it, deny, and let the next call make a new one.
            Err(f) => {
                tracing::warn!(code = %f.code, message = %f.message, "policy module failed; instance discarded");
                Decision::deny(f.code, f.message, &self.hash)
            }
        }
    }

    /// Decides an HTTP request at `now` (Unix seconds). Never fails: a
    /// trap, an overrun or malformed output is a deny.
    pub fn evaluate_http(&self, request: &HttpRequest, now: u64) -> Decision {
        let req = wit::HttpRequest {
            method: request.method.clone(),
            path: request.path.clone(),
            query: request.query.clone(),
            headers: request.headers.clone(),
            params: request.params.clone(),
        };
        self.run(|b, s, p| {
            b.greenlight_approval_engine()
                .policy()
                .call_evaluate_http(s, p, &req, now)
        })
    }

    /// Verifies an access token at `now` and returns who it names (the
    /// WIT `authenticate`); action tokens are refused. A failing module is
    /// a denial too.
    pub fn authenticate(&self, token: &str, now: u64) -> Result<Principal, Denial> {
        let mut slot = self.take_slot().map_err(|e| Denial {
            code: DenialCode::EngineUnavailable,
            message: format!("no policy instance is available: {e}"),
        })?;
        let result = slot.call(
            &self.inner.limits,
            self.inner.limits.call_budget,
            |b, s, p| {
                b.greenlight_approval_engine()
                    .policy()
                    .call_authenticate(s, p, token, now)
            },
        );
        match result {
            Ok(answer) => {
                self.put_back(slot);
                let checked = |v: Vec<String>, what: &str| -> Result<Vec<String>, Denial> {
                    check_list(&v, what)
                        .and_then(|()| v.iter().try_for_each(|s| check_str(s, what)))
                        .map(|()| v)
                        .map_err(|why| Denial {
                            code: DenialCode::EngineInvalidOutput,
                            message: format!(
                                "the policy module returned a malformed principal: {why}"
                            ),
                        })
                };
                match answer {
                    Ok(p) => Ok(Principal {
                        entity_type: checked(vec![p.entity_type], "the entity type")?.remove(0),
                        subject: checked(vec![p.subject], "the subject")?.remove(0),
                        client_id: checked(vec![p.client_id], "the client id")?.remove(0),
                        scopes: checked(p.scopes, "scopes")?,
                        groups: checked(p.groups, "groups")?,
                        roles: checked(p.roles, "roles")?,
                        tenant: checked(vec![p.tenant], "the tenant")?.remove(0),
                        issuer: checked(vec![p.issuer], "the issuer")?.remove(0),
                    }),
                    Err(d) => Err(Denial {
                        code: denial_code(d.code),
                        message: truncate(d.message),
                    }),
                }
            }
            Err(f) => Err(f.into_denial()),
        }
    }

    /// Decides an AuthZEN-shaped request at `now` (Unix seconds).
    pub fn evaluate(&self, request: &AccessRequest, now: u64) -> Decision {
        let req = access_request(request);
        self.run(|b, s, p| {
            b.greenlight_approval_engine()
                .policy()
                .call_evaluate(s, p, &req, now)
        })
    }

    /// Decides an AuthZEN-shaped request for a subject this host vouches
    /// for (the WIT `evaluate-as`). Only for subjects forwarded by a
    /// policy enforcement point the caller has authenticated and trusts:
    /// the component cannot tell a vouched subject from a claimed one.
    pub fn evaluate_as(&self, subject: &Principal, request: &AccessRequest, now: u64) -> Decision {
        let who = wit::Principal {
            entity_type: subject.entity_type.clone(),
            subject: subject.subject.clone(),
            client_id: subject.client_id.clone(),
            scopes: subject.scopes.clone(),
            groups: subject.groups.clone(),
            roles: subject.roles.clone(),
            tenant: subject.tenant.clone(),
            issuer: subject.issuer.clone(),
        };
        let req = access_request(request);
        self.run(|b, s, p| {
            b.greenlight_approval_engine()
                .policy()
                .call_evaluate_as(s, p, &who, &req, now)
        })
    }
}

/// The WIT form of an AuthZEN-shaped request.
fn access_request(request: &AccessRequest) -> wit::AccessRequest {
    wit::AccessRequest {
        token: request.token.clone(),
        action: request.action.clone(),
        resource_type: request.resource_type.clone(),
        resource_id: request.resource_id.clone(),
        resource_properties: request.resource_properties.clone(),
        context: request.context.clone(),
    }
}

fn load_error(e: wit::LoadError) -> LoadError {
    match e {
        wit::LoadError::InvalidBundle(problems) => LoadError::InvalidBundle(
            problems
                .into_iter()
                .take(1024)
                .map(|p| Problem {
                    kind: match p.kind {
                        wit::ProblemKind::MissingFile => ProblemKind::MissingFile,
                        wit::ProblemKind::InvalidConfig => ProblemKind::InvalidConfig,
                        wit::ProblemKind::InvalidPolicy => ProblemKind::InvalidPolicy,
                        wit::ProblemKind::InvalidSchema => ProblemKind::InvalidSchema,
                        wit::ProblemKind::InvalidKeys => ProblemKind::InvalidKeys,
                    },
                    file: truncate(p.file),
                    line: p.line,
                    column: p.column,
                    message: truncate(p.message),
                })
                .collect(),
        ),
        wit::LoadError::Other(s) => LoadError::Other(truncate(s)),
    }
}

fn truncate(mut s: String) -> String {
    if s.len() > MAX_GUEST_STRING {
        let mut cut = MAX_GUEST_STRING;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

fn denial_code(code: wit::DenialCode) -> DenialCode {
    use DenialCode as C;
    use wit::DenialCode as W;
    match code {
        W::RequestInvalid => C::RequestInvalid,
        W::RouteNotFound => C::RouteNotFound,
        W::TokenMissing => C::TokenMissing,
        W::TokenTooLarge => C::TokenTooLarge,
        W::TokenMalformed => C::TokenMalformed,
        W::TokenUnsupportedAlgorithm => C::TokenUnsupportedAlgorithm,
        W::TokenAlgorithmNotAllowed => C::TokenAlgorithmNotAllowed,
        W::TokenUnknownIssuer => C::TokenUnknownIssuer,
        W::TokenUnknownKey => C::TokenUnknownKey,
        W::TokenKeyMismatch => C::TokenKeyMismatch,
        W::TokenBadSignature => C::TokenBadSignature,
        W::TokenWrongType => C::TokenWrongType,
        W::TokenUnknownCriticalHeader => C::TokenUnknownCriticalHeader,
        W::TokenWrongAudience => C::TokenWrongAudience,
        W::TokenExpired => C::TokenExpired,
        W::TokenNotYetValid => C::TokenNotYetValid,
        W::TokenIssuedInFuture => C::TokenIssuedInFuture,
        W::TokenMissingClaim => C::TokenMissingClaim,
        W::PolicyForbidden => C::PolicyForbidden,
        W::PolicyNoPermit => C::PolicyNoPermit,
        W::ActionTokenDigestMismatch => C::ActionTokenDigestMismatch,
        W::ActionTokenInvalid => C::ActionTokenInvalid,
        W::ActionTokenReplayed => C::ActionTokenReplayed,
        W::EngineTrap => C::EngineTrap,
        W::EngineTimeout => C::EngineTimeout,
        W::EngineMemoryExceeded => C::EngineMemoryExceeded,
        W::EngineInvalidOutput => C::EngineInvalidOutput,
        W::EngineUnavailable => C::EngineUnavailable,
    }
}

fn check_str(s: &str, what: &str) -> Result<(), String> {
    if s.len() > MAX_GUEST_STRING {
        return Err(format!("{what} has {} bytes", s.len()));
    }
    Ok(())
}

fn check_list<T>(l: &[T], what: &str) -> Result<(), String> {
    if l.len() > MAX_GUEST_LIST {
        return Err(format!("{what} has {} entries", l.len()));
    }
    Ok(())
}

/// A header name is a token (RFC 9110 §5.6.2); a value has no CR, LF or NUL.
fn check_header(name: &str, value: &str) -> Result<(), String> {
    let token = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token || value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) || value.len() > 8192 {
        return Err(format!(
            "header `{}` is not a valid HTTP header",
            name.escape_debug()
        ));
    }
    Ok(())
}

/// Converts and validates a guest's decision: the guest is untrusted too.
fn decision(d: wit::Decision) -> Result<Decision, String> {
    check_list(&d.reasons, "reasons")?;
    for r in &d.reasons {
        check_str(r, "a reason")?;
    }
    check_str(&d.policy_hash, "the policy hash")?;
    let verdict = match d.verdict {
        wit::Verdict::Allow(a) => {
            check_str(&a.subject, "the subject")?;
            check_list(&a.forward_headers, "forward headers")?;
            for (k, v) in &a.forward_headers {
                check_header(k, v)?;
            }
            if a.subject.is_empty() {
                return Err("an allow without a subject".to_owned());
            }
            Verdict::Allow(Allowance {
                subject: a.subject,
                consume: match a.consume {
                    Some(c) => {
                        check_str(&c.token_id, "the token id")?;
                        if c.token_id.is_empty() {
                            return Err("a single-use token without an id".to_owned());
                        }
                        Some(SingleUse {
                            token_id: c.token_id,
                            expires_at: c.expires_at,
                        })
                    }
                    None => None,
                },
                forward_headers: a.forward_headers,
            })
        }
        wit::Verdict::Deny(den) => {
            check_str(&den.message, "the denial message")?;
            Verdict::Deny(Denial {
                code: denial_code(den.code),
                message: den.message,
            })
        }
        wit::Verdict::ApprovalRequired(c) => {
            check_str(&c.authorization_details, "authorization_details")?;
            check_str(&c.action_digest, "the action digest")?;
            let o = c.obligation;
            check_list(&o.approvers, "approvers")?;
            check_str(&o.message, "the obligation message")?;
            if o.approvers.is_empty() || o.quorum == 0 {
                return Err("an obligation without approvers or quorum".to_owned());
            }
            let details: serde_json::Value = serde_json::from_str(&c.authorization_details)
                .map_err(|e| format!("authorization_details is not JSON: {e}"))?;
            if !details.is_array() {
                return Err("authorization_details is not an array".to_owned());
            }
            Verdict::ApprovalRequired(Challenge {
                authorization_details: details,
                action_digest: c.action_digest,
                obligation: Obligation {
                    approvers: o.approvers,
                    quorum: o.quorum,
                    ttl_seconds: o.ttl_seconds,
                    grant: match o.grant {
                        wit::GrantMode::Once => GrantMode::Once,
                        wit::GrantMode::Window => GrantMode::Window,
                    },
                    window_seconds: o.window_seconds,
                    reason_required: o.reason_required,
                    message: o.message,
                },
            })
        }
    };
    Ok(Decision {
        verdict,
        reasons: d.reasons,
        policy_hash: d.policy_hash,
    })
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
        let wanted = matches!(
            name.as_str(),
            greenlight_core::bundle::CONFIG_FILE
                | greenlight_core::bundle::POLICY_FILE
                | greenlight_core::bundle::SCHEMA_FILE
        ) || name.ends_with(".json");
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

    /// An instance that was busy while the keys changed holds the old keys:
    /// it is dropped when it comes back, not pooled again.
    #[test]
    fn an_instance_busy_while_keys_change_is_not_pooled_again() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/bundle");
        let engine = Engine::load(greenlight_component::GREENLIGHT_WASM).expect("component");
        let policy = engine
            .load_bundle(read_bundle_dir(&dir).expect("bundle dir"))
            .expect("bundle");
        let busy = policy.take_slot().expect("an instance");
        assert_eq!(busy.generation, 0);
        let jwks = std::fs::read_to_string(dir.join("idp.jwks.json")).expect("jwks");
        policy
            .set_keys("https://idp.example.com", &jwks)
            .expect("keys");
        policy.put_back(busy);
        let pool = lock(&policy.pool);
        assert_eq!(
            pool.iter().map(|s| s.generation).collect::<Vec<_>>(),
            vec![1],
            "only the instance validated with the new keys"
        );
    }
}
