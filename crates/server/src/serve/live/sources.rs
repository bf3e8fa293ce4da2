//! Where versions come from: the component (a file, or the shipped one)
//! and the bundle (a folder, or a signed archive at a URL), read into what
//! a version is built from, with a fingerprint to notice a change.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use sha2::{Digest, Sha256};

use super::remote::{FetchError, Remote};

/// Where the bundle comes from.
#[derive(Clone, Debug)]
pub enum BundleSource {
    /// A folder, read whole at each look.
    Dir(PathBuf),
    /// A signed archive at a URL, polled.
    Remote(Arc<Remote>),
}

impl std::fmt::Display for BundleSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Dir(p) => write!(f, "{}", p.display()),
            Self::Remote(r) => write!(f, "{}", r.url),
        }
    }
}

/// Where versions come from.
#[derive(Clone, Debug)]
pub struct Sources {
    /// The bundle.
    pub bundle: BundleSource,
    /// A custom policy module; `None` is the shipped `greenlight.wasm`.
    pub component: Option<PathBuf>,
    /// Whether a development bundle may be served (`--dev`).
    pub development: bool,
}

/// What one reading of the sources found.
pub(super) struct Read {
    pub component: Cow<'static, [u8]>,
    /// SHA-256 of `component`.
    pub component_digest: [u8; 32],
    pub files: Vec<(String, String)>,
    pub tests: Vec<(String, String)>,
    /// A digest of all of the above.
    pub fingerprint: [u8; 32],
}

/// Why the sources could not be read into a candidate version.
#[derive(Debug)]
pub(super) enum ReadError {
    /// They cannot be read now (a missing file, a bundle URL that does not
    /// answer): the version deciding stays; nothing new was refused.
    Unavailable(anyhow::Error),
    /// They hold a new version that must not decide (a remote archive
    /// whose signature does not verify, or that does not unpack),
    /// fingerprinted so the same one is refused once.
    Refused {
        fingerprint: [u8; 32],
        error: anyhow::Error,
    },
}

fn component(path: Option<&PathBuf>) -> anyhow::Result<(Cow<'static, [u8]>, [u8; 32])> {
    Ok(match path {
        Some(p) => {
            let bytes = std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
            let digest = Sha256::digest(&bytes).into();
            (Cow::Owned(bytes), digest)
        }
        None => {
            // Hashed once: the watcher fingerprints the sources often.
            static SHIPPED: OnceLock<[u8; 32]> = OnceLock::new();
            let digest = *SHIPPED
                .get_or_init(|| Sha256::digest(greenlight_component::GREENLIGHT_WASM).into());
            (Cow::Borrowed(greenlight_component::GREENLIGHT_WASM), digest)
        }
    })
}

impl Sources {
    /// Reads the component, the bundle's files and its tests.
    pub(super) async fn read(&self) -> Result<Read, ReadError> {
        let path = self.component.clone();
        let (component, component_digest) =
            tokio::task::spawn_blocking(move || component(path.as_ref()))
                .await
                .map_err(|e| {
                    ReadError::Unavailable(anyhow::anyhow!("reading the component panicked: {e}"))
                })?
                .map_err(ReadError::Unavailable)?;
        let (files, tests) = match &self.bundle {
            BundleSource::Dir(dir) => {
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                    let files = greenlight_host::read_bundle_dir(&dir)
                        .with_context(|| format!("cannot read bundle {}", dir.display()))?;
                    Ok((files, crate::policytest::read_files(&dir)?))
                })
                .await
                .map_err(|e| {
                    ReadError::Unavailable(anyhow::anyhow!("reading the bundle panicked: {e}"))
                })?
                .map_err(ReadError::Unavailable)?
            }
            BundleSource::Remote(r) => match r.fetch().await {
                Ok(u) => (u.files, u.tests),
                Err(FetchError::Unavailable(e)) => return Err(ReadError::Unavailable(e)),
                Err(FetchError::Refused { archive, error }) => {
                    let mut h = Sha256::new();
                    h.update(component_digest);
                    h.update(b"archive");
                    h.update(archive);
                    return Err(ReadError::Refused {
                        fingerprint: h.finalize().into(),
                        error,
                    });
                }
            },
        };
        let fingerprint = fingerprint(&component_digest, &files, &tests);
        Ok(Read {
            component,
            component_digest,
            files,
            tests,
            fingerprint,
        })
    }

    /// A digest of everything a version is made from, to notice a change
    /// without loading anything; `None` when the sources cannot be read
    /// (or hold a version that is refused).
    pub async fn fingerprint(&self) -> Option<[u8; 32]> {
        match self.read().await {
            Ok(r) => Some(r.fingerprint),
            Err(ReadError::Refused { fingerprint, .. }) => Some(fingerprint),
            Err(ReadError::Unavailable(_)) => None,
        }
    }
}

fn fingerprint(
    component_digest: &[u8; 32],
    files: &[(String, String)],
    tests: &[(String, String)],
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(component_digest);
    for (part, list) in [("bundle", files), ("tests", tests)] {
        h.update(part.as_bytes());
        for (name, text) in list {
            // Lengths first, so no two listings hash alike.
            h.update((name.len() as u64).to_be_bytes());
            h.update(name.as_bytes());
            h.update((text.len() as u64).to_be_bytes());
            h.update(text.as_bytes());
        }
    }
    h.finalize().into()
}
