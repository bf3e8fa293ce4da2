//! A bundle fetched from a URL (`greenlight serve --bundle https://…`): a
//! signed archive ([`crate::archive`]) polled with `If-None-Match`, whose
//! detached signature (the URL plus `.sig`, unless configured) must verify
//! with a locally configured key before anything is unpacked or loaded.
//!
//! ```toml
//! [remote_bundle]
//! trusted_keys = "/etc/greenlight/bundle-signers.jwks.json"  # required
//! poll_interval = 30           # seconds between polls (a 304 costs one request)
//! # signature_url = "https://policy.example.com/payments.tar.gz.sig"
//! max_bytes = 4194304          # the largest archive accepted
//! allow_http_loopback = false  # plain HTTP to 127.0.0.1/::1/localhost, for tests
//! ```
//!
//! Replicas polling the same URL load the same archive, so they converge on
//! the same bundle hash. A fetch that fails, a signature that does not
//! verify, an archive that does not unpack: each leaves the version
//! deciding as it is (and stops the server at start, which has nothing to
//! decide with).

use std::path::PathBuf;
use std::sync::PoisonError;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use jsonwebtoken::jwk::JwkSet;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::archive::{self, Unpacked};

/// `[remote_bundle]`: how a bundle URL is fetched and trusted.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteSettings {
    /// A JWKS file of the keys whose bundle signatures are trusted.
    pub trusted_keys: Option<PathBuf>,
    /// Seconds between polls; defaults to 30.
    pub poll_interval: Option<u64>,
    /// Where the signature is; defaults to the bundle URL plus `.sig`.
    pub signature_url: Option<String>,
    /// The bundle name signatures must carry; defaults to the URL's file
    /// name without `.tar.gz`.
    pub name: Option<String>,
    /// The largest archive accepted, in bytes; defaults to 4 MiB.
    pub max_bytes: Option<u64>,
    /// Whether plain HTTP to a loopback address is allowed (for tests).
    #[serde(default)]
    pub allow_http_loopback: bool,
}

/// Seconds between polls when `poll_interval` is not set.
pub const DEFAULT_POLL_SECONDS: u64 = 30;

/// The largest archive accepted when `max_bytes` is not set.
pub const DEFAULT_MAX_BYTES: u64 = 4 << 20;

/// The longest a fetch of the archive or its signature may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

impl RemoteSettings {
    /// The poll interval.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_secs(self.poll_interval.unwrap_or(DEFAULT_POLL_SECONDS).max(1))
    }
}

/// What the last good fetch brought.
struct Fetched {
    etag: Option<String>,
    unpacked: Unpacked,
}

/// A bundle URL and what is needed to fetch and trust it.
pub struct Remote {
    /// The archive's URL.
    pub url: String,
    /// The signature's URL.
    pub signature_url: String,
    /// The bundle name signatures must carry.
    pub name: String,
    trusted: JwkSet,
    client: reqwest::Client,
    max_bytes: u64,
    last: tokio::sync::Mutex<Option<Fetched>>,
    /// When the newest archive accepted was signed: an archive signed
    /// before it (an older version served again) is refused.
    newest: std::sync::Mutex<u64>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("url", &self.url)
            .field("signature_url", &self.signature_url)
            .finish_non_exhaustive()
    }
}

/// Whether `url` is one the settings allow: HTTPS, or plain HTTP to a
/// loopback host when `allow_http_loopback`.
fn check_url(url: &str, settings: &RemoteSettings) -> anyhow::Result<()> {
    let u = reqwest::Url::parse(url).with_context(|| format!("`{url}` is not a URL"))?;
    match u.scheme() {
        "https" => Ok(()),
        "http"
            if settings.allow_http_loopback && super::super::keysource::fetch::is_loopback(&u) =>
        {
            Ok(())
        }
        _ => bail!("`{url}` is not HTTPS (plain HTTP only to loopback, with allow_http_loopback)"),
    }
}

impl Remote {
    /// The remote bundle at `url`, trusted by the keys `settings` names.
    pub fn new(url: &str, settings: &RemoteSettings) -> anyhow::Result<Self> {
        check_url(url, settings)?;
        let signature_url = settings
            .signature_url
            .clone()
            .unwrap_or_else(|| format!("{url}.sig"));
        check_url(&signature_url, settings)?;
        let Some(path) = &settings.trusted_keys else {
            bail!(
                "a bundle URL needs [remote_bundle] trusted_keys: the keys whose signatures are trusted"
            );
        };
        let trusted = archive::read_trusted(path)?;
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let name = match &settings.name {
            Some(n) => n.clone(),
            None => archive::default_name(
                reqwest::Url::parse(url)?
                    .path_segments()
                    .and_then(|mut s| s.next_back())
                    .unwrap_or(""),
            ),
        };
        Ok(Self {
            url: url.to_owned(),
            name,
            newest: std::sync::Mutex::new(0),
            signature_url,
            trusted,
            client,
            max_bytes: settings.max_bytes.unwrap_or(DEFAULT_MAX_BYTES),
            last: tokio::sync::Mutex::new(None),
        })
    }

    /// Reads a whole body of at most `max` bytes.
    async fn body(mut r: reqwest::Response, max: u64, what: &str) -> anyhow::Result<Vec<u8>> {
        if r.content_length().is_some_and(|n| n > max) {
            bail!("the {what} is larger than {max} bytes");
        }
        let mut out = Vec::new();
        while let Some(chunk) = r
            .chunk()
            .await
            .with_context(|| format!("reading the {what}"))?
        {
            out.extend_from_slice(&chunk);
            if out.len() as u64 > max {
                bail!("the {what} is larger than {max} bytes");
            }
        }
        Ok(out)
    }

    /// The bundle the URL holds now: fetched when it changed
    /// (`If-None-Match`), its signature verified and the archive unpacked
    /// before it is returned.
    pub async fn fetch(&self) -> Result<Unpacked, FetchError> {
        let mut last = self.last.lock().await;
        let mut req = self.client.get(&self.url);
        if let Some(tag) = last.as_ref().and_then(|l| l.etag.as_deref()) {
            req = req.header(reqwest::header::IF_NONE_MATCH, tag);
        }
        let unavailable = |e: anyhow::Error| FetchError::Unavailable(e);
        let r = req
            .send()
            .await
            .map_err(|e| unavailable(anyhow!("fetching {} failed: {e}", self.url)))?;
        if r.status() == reqwest::StatusCode::NOT_MODIFIED
            && let Some(l) = last.as_ref()
        {
            return Ok(l.unpacked.clone());
        }
        if r.status() != reqwest::StatusCode::OK {
            return Err(unavailable(anyhow!("{} answered {}", self.url, r.status())));
        }
        let etag = r
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = Self::body(r, self.max_bytes, "bundle archive")
            .await
            .map_err(unavailable)?;
        // What is refused is the pair: the same archive with a new
        // signature (published a moment after it) is judged again.
        let digest = Sha256::digest(&bytes);
        let pair = |signature: &str| -> [u8; 32] {
            let mut h = Sha256::new();
            h.update(digest);
            h.update(signature.as_bytes());
            h.finalize().into()
        };
        let unsigned = pair("");
        let signature = async {
            let s = self
                .client
                .get(&self.signature_url)
                .send()
                .await
                .map_err(|e| anyhow!("fetching {} failed: {e}", self.signature_url))?;
            if s.status() != reqwest::StatusCode::OK {
                bail!(
                    "{} answered {}: the bundle is unsigned",
                    self.signature_url,
                    s.status()
                );
            }
            let body = Self::body(s, 64 * 1024, "bundle signature").await?;
            String::from_utf8(body).map_err(|_| anyhow!("the signature is not text"))
        }
        .await
        .map_err(|error| FetchError::Refused {
            archive: unsigned,
            error,
        })?;
        let refused = |error: anyhow::Error| FetchError::Refused {
            archive: pair(&signature),
            error,
        };
        let statement =
            archive::verify(&bytes, &signature, &self.trusted, &self.name).map_err(refused)?;
        let newest = *self.newest.lock().unwrap_or_else(PoisonError::into_inner);
        if statement.iat < newest {
            return Err(refused(anyhow!(
                "the archive was signed at {}, before the newest accepted ({newest}): an older \
                 version served again is refused",
                statement.iat
            )));
        }
        let unpacked = archive::unpack(&bytes).map_err(refused)?;
        *self.newest.lock().unwrap_or_else(PoisonError::into_inner) = statement.iat;
        *last = Some(Fetched {
            etag,
            unpacked: unpacked.clone(),
        });
        Ok(unpacked)
    }
}

/// Why a fetch brought no bundle.
#[derive(Debug)]
pub enum FetchError {
    /// The URL did not answer with an archive (down, a status other than
    /// 200 or 304, too large): nothing new to judge.
    Unavailable(anyhow::Error),
    /// It answered with an archive that must not be loaded: unsigned,
    /// wrongly signed, or not a bundle.
    Refused {
        /// A digest of the archive and its signature.
        archive: [u8; 32],
        /// Why.
        error: anyhow::Error,
    },
}
