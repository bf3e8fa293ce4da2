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
//! should not.
//!
//! A cached artifact is native code this process will run, so nobody else
//! may have been able to write it:
//! - the directory is created `0700`; an existing one must be a real
//!   directory (not a symlink) owned by this process's user and writable
//!   by nobody else (one merely readable by others is tightened to `0700`),
//!   else the cache is not used at all;
//! - an artifact is mapped only if it is a regular file (not a symlink),
//!   owned by this user, `0600`, and its SHA-256 matches the digest
//!   written beside it (`.sha256`), which catches a truncated, corrupted
//!   or swapped file; anything else is compiled afresh and replaced.
//!
//! Outside Unix the ownership checks do not apply; the digest does.
//!
//! The digest costs a read and a hash of the whole artifact: 6.9 ms for
//! the 12.6 MB artifact of `greenlight.wasm` (best of 20, `sha2` release
//! build with SHA-NI, on the development machine), so a start that maps
//! takes about 7.2 ms, still under wasmtime's cache hit and 250 times less
//! than compiling.

use std::fs::Metadata;
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
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

/// What became of the cache on one load.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A verified artifact was mapped.
    Mapped,
    /// Compiled; `stored` if the artifact was written for next time;
    /// `why` names what was found unusable, if anything.
    Compiled {
        /// Whether the new artifact was written.
        stored: bool,
        /// Why no artifact was mapped, when one was found or the
        /// directory was refused.
        why: Option<String>,
    },
}

/// The SHA-256 of `bytes`, in lower-case hex.
pub(crate) fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The effective user of this process.
#[cfg(unix)]
fn current_user() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Whether `meta` is owned by `user` and neither group- nor other-
/// writable (`private`: nor readable either); the reason when not.
#[cfg(unix)]
fn owned(meta: &Metadata, user: u32, private: bool) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    if meta.uid() != user {
        return Err(format!("owned by uid {}, not {user}", meta.uid()));
    }
    let forbidden = if private { 0o077 } else { 0o022 };
    if meta.mode() & forbidden != 0 {
        return Err(format!("mode {:o} lets others in", meta.mode() & 0o777));
    }
    Ok(())
}

#[cfg(not(unix))]
fn owned(_: &Metadata, _: u32, _: bool) -> Result<(), String> {
    Ok(())
}

#[cfg(not(unix))]
fn current_user() -> u32 {
    0
}

/// Makes sure `dir` is a private directory of `user`, creating it `0700`
/// or tightening one only others can read; the reason when it cannot be
/// trusted.
fn private_dir(dir: &Path, user: u32) -> Result<(), String> {
    if std::fs::symlink_metadata(dir).is_err() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(dir)
            .map_err(|e| format!("cannot create it: {e}"))?;
    }
    let meta = std::fs::symlink_metadata(dir).map_err(|e| e.to_string())?;
    if !meta.file_type().is_dir() {
        return Err("not a directory (a symlink is not followed)".to_owned());
    }
    owned(&meta, user, false)?;
    #[cfg(unix)]
    if owned(&meta, user, true).is_err() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("cannot make it private: {e}"))?;
    }
    Ok(())
}

/// Reads the file at `path` if it is a regular file private to `user`.
fn read_private(path: &Path, user: u32) -> Result<Vec<u8>, String> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| e.to_string())?;
    if !meta.file_type().is_file() {
        return Err("not a regular file (a symlink is not followed)".to_owned());
    }
    owned(&meta, user, true)?;
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| e.to_string())?;
    Ok(bytes)
}

/// Whether the artifact at `path` may be mapped: private to `user` and
/// matching the digest beside it; the reason when not.
fn verified(path: &Path, digest_path: &Path, user: u32) -> Result<(), String> {
    let recorded = read_private(digest_path, user).map_err(|e| format!("its digest: {e}"))?;
    let artifact = read_private(path, user)?;
    if recorded.trim_ascii() != hex_sha256(&artifact).as_bytes() {
        return Err("its SHA-256 does not match the recorded digest".to_owned());
    }
    Ok(())
}

/// Writes `bytes` to `path` as a `0600` file, through a temporary file and
/// a rename, so a concurrent reader never sees half a file.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    // Unique per process and call: two engines built at once on two
    // threads never share a temporary file.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp{}-{n}", std::process::id()));
    // A leftover of a crashed process with the same id goes first, so the
    // file is created here with its mode.
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
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
    let (compiled, outcome) = compile_cached_as(engine, component, dir, current_user())?;
    if let Outcome::Compiled { why: Some(why), .. } = &outcome {
        tracing::warn!(dir = %dir.display(), %why, "not using the cached artifact");
    }
    Ok(compiled)
}

/// [`compile_cached`] for the user `user`, saying what it did.
pub(crate) fn compile_cached_as(
    engine: &wasmtime::Engine,
    component: &[u8],
    dir: &Path,
    user: u32,
) -> Result<(Component, Outcome), HostError> {
    let compile =
        || Component::new(engine, component).map_err(|e| HostError::Component(format!("{e:#}")));
    if let Err(why) = private_dir(dir, user) {
        let why = format!("the cache directory {}: {why}", dir.display());
        return Ok((
            compile()?,
            Outcome::Compiled {
                stored: false,
                why: Some(why),
            },
        ));
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let name = format!("{}-{:016x}.cwasm", hex_sha256(component), hasher.finish());
    let path = dir.join(&name);
    let digest_path = dir.join(format!("{name}.sha256"));
    let mut why = None;
    if std::fs::symlink_metadata(&path).is_ok() {
        match verified(&path, &digest_path, user) {
            Ok(()) => {
                // SAFETY: the file is private to this user in a directory
                // only this user can write, and matches the digest this
                // host recorded when it wrote it with `Component::serialize`
                // for this exact wasmtime build and engine configuration
                // (both are in its name); wasmtime re-checks the version
                // and settings in the artifact header before using it.
                #[expect(
                    unsafe_code,
                    reason = "mapping a precompiled artifact is unsafe in wasmtime's API"
                )]
                let loaded = unsafe { Component::deserialize_file(engine, &path) };
                match loaded {
                    Ok(c) => return Ok((c, Outcome::Mapped)),
                    Err(e) => why = Some(format!("{name}: {e:#}")),
                }
            }
            // An artifact without its digest is another process between
            // its two renames (or a digest removed): never mapped, and not
            // worth a warning, since concurrent first starts meet it.
            Err(_) if std::fs::symlink_metadata(&digest_path).is_err() => {}
            Err(e) => why = Some(format!("{name}: {e}")),
        }
    }
    let compiled = compile()?;
    let write = || -> std::io::Result<()> {
        let bytes = compiled
            .serialize()
            .map_err(|e| std::io::Error::other(format!("{e:#}")))?;
        // The old digest goes first: between the two renames a reader
        // finds no digest and compiles, never a digest of another file.
        let _ = std::fs::remove_file(&digest_path);
        write_private(&path, &bytes)?;
        write_private(&digest_path, hex_sha256(&bytes).as_bytes())
    };
    let stored = match write() {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot cache the compiled component");
            false
        }
    };
    Ok((compiled, Outcome::Compiled { stored, why }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest component: compiles in milliseconds.
    const EMPTY: &[u8] = b"(component)";

    fn load(dir: &Path, user: u32) -> Outcome {
        let engine = wasmtime::Engine::default();
        compile_cached_as(&engine, EMPTY, dir, user)
            .expect("compiles")
            .1
    }

    /// The artifact in `dir` (not its digest).
    fn artifact(dir: &Path) -> PathBuf {
        std::fs::read_dir(dir)
            .expect("dir")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "cwasm"))
            .expect("an artifact")
    }

    fn digest_of(path: &Path) -> PathBuf {
        PathBuf::from(format!("{}.sha256", path.display()))
    }

    fn compiled(why: Option<&str>) -> Outcome {
        Outcome::Compiled {
            stored: true,
            why: why.map(str::to_owned),
        }
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::MetadataExt;
        std::fs::symlink_metadata(path).expect("meta").mode() & 0o777
    }

    /// A new cache is private: the directory `0700`, the artifact and its
    /// digest `0600`; the next load maps it.
    #[test]
    #[cfg(unix)]
    fn a_new_cache_is_private_and_maps_on_the_next_load() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("cache/greenlight");
        let me = current_user();
        assert_eq!(load(&dir, me), compiled(None));
        let path = artifact(&dir);
        assert_eq!(
            (mode(&dir), mode(&path), mode(&digest_of(&path))),
            (0o700, 0o600, 0o600)
        );
        assert_eq!(load(&dir, me), Outcome::Mapped);
    }

    /// A corrupted or swapped artifact is never mapped: its digest no
    /// longer matches; it is compiled afresh and replaced.
    #[test]
    fn an_artifact_that_does_not_match_its_digest_is_replaced() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("c");
        let me = current_user();
        load(&dir, me);
        let path = artifact(&dir);
        let mut bytes = std::fs::read(&path).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        write_private(&path, &bytes).expect("tamper");
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        assert_eq!(
            load(&dir, me),
            compiled(Some(&format!(
                "{name}: its SHA-256 does not match the recorded digest"
            )))
        );
        assert_eq!(load(&dir, me), Outcome::Mapped);

        // Without its digest it is not trusted either: compiled again,
        // quietly (another process between its two renames looks so).
        std::fs::remove_file(digest_of(&path)).expect("rm");
        assert_eq!(load(&dir, me), compiled(None));
        assert_eq!(load(&dir, me), Outcome::Mapped);
    }

    /// Files and directories someone else could have written are refused:
    /// another owner, a group- or world-writable directory, a readable
    /// artifact, a symlink.
    #[test]
    #[cfg(unix)]
    fn what_others_could_write_is_never_mapped() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("c");
        let me = current_user();
        load(&dir, me);
        let path = artifact(&dir);
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();

        // Another user's process finds this user's directory.
        let other = me.wrapping_add(1);
        assert_eq!(
            load(&dir, other),
            Outcome::Compiled {
                stored: false,
                why: Some(format!(
                    "the cache directory {}: owned by uid {me}, not {other}",
                    dir.display()
                )),
            }
        );

        // A world-writable directory is not used at all (not even written).
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        assert_eq!(
            load(&dir, me),
            Outcome::Compiled {
                stored: false,
                why: Some(format!(
                    "the cache directory {}: mode 777 lets others in",
                    dir.display()
                )),
            }
        );
        // One others may only read is tightened and used.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        assert_eq!(load(&dir, me), Outcome::Mapped);
        assert_eq!(mode(&dir), 0o700);

        // An artifact others may read (or write) is replaced.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert_eq!(
            load(&dir, me),
            compiled(Some(&format!("{name}: mode 644 lets others in")))
        );
        assert_eq!(mode(&path), 0o600);

        // A symlink to a valid artifact is not followed, and is replaced.
        let elsewhere = root.path().join("elsewhere.cwasm");
        std::fs::rename(&path, &elsewhere).expect("move");
        std::os::unix::fs::symlink(&elsewhere, &path).expect("symlink");
        assert_eq!(
            load(&dir, me),
            compiled(Some(&format!(
                "{name}: not a regular file (a symlink is not followed)"
            )))
        );
        assert!(std::fs::symlink_metadata(&path).expect("meta").is_file());
        assert_eq!(load(&dir, me), Outcome::Mapped);

        // A symlinked cache directory is refused.
        let link = root.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).expect("symlink");
        assert_eq!(
            load(&link, me),
            Outcome::Compiled {
                stored: false,
                why: Some(format!(
                    "the cache directory {}: not a directory (a symlink is not followed)",
                    link.display()
                )),
            }
        );
    }
}
