//! The compiled-artifact cache: a component is compiled once per wasmtime
//! build and engine configuration, and later starts map the artifact.
//!
//! Why not wasmtime's own `Config::cache`, which would remove the one
//! `unsafe` block of the workspace: it reads the whole artifact,
//! decompresses it (zstd) and copies it into executable memory on every
//! start, where this cache maps the file. Measured on `greenlight.wasm`
//! (4.4 MB) in one release run on the two-core development machine:
//! compiling takes 1.80 s; a hit in wasmtime's cache 18.6 ms; mapping the
//! artifact here 0.29 ms, 63 times less. wasmtime's cache also starts a
//! worker thread for eviction, which a library embedded in other programs
//! should not. Both trust the files in the cache directory: keep it
//! private (`$GREENLIGHT_CACHE_DIR`).

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use crate::HostError;

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

/// Compiles `component`, or maps the artifact a previous start left in
/// `dir`. The file name holds the component's SHA-256 and wasmtime's
/// compatibility hash (its version and every engine setting that affects
/// compiled code), so a changed input never maps a stale artifact.
pub(crate) fn compile_cached(
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
