//! One fetch of a provider's metadata or key set: HTTPS (plain HTTP only to
//! loopback, when the bundle allows it), no redirects, connect and total
//! timeouts, a size cap, and the freshness the response states.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use greenlight_types::bundle::KeyFetchSettings;
use reqwest::header::{CACHE_CONTROL, DATE, EXPIRES};
use serde_json::Value;

/// A key set as fetched.
#[derive(Clone, Debug)]
pub struct Fetched {
    /// The JWKS document.
    pub body: String,
    /// Its keys' `kid`s, in order.
    pub kids: Vec<String>,
    /// How long the provider says it stays fresh, in seconds, if it says.
    pub max_age: Option<u64>,
}

/// Checks that `url` may be fetched: `https://`, or `http://` to a loopback
/// address when the bundle allows it.
pub fn check_url(url: &str, settings: &KeyFetchSettings) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if settings.allow_http_loopback && is_loopback(&parsed) => Ok(parsed),
        "http" if is_loopback(&parsed) => Err(format!(
            "`{url}` is plain HTTP: allowed for loopback only with `[key_fetch] allow_http_loopback = true`"
        )),
        _ => Err(format!("`{url}` is not HTTPS")),
    }
}

/// Whether `url`'s host is `localhost` or a loopback address: where plain
/// HTTP may be allowed (key fetches, bundle URLs, the portal's cookies).
pub fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|a| a.is_loopback())
}

/// Fetches with the bundle's limits.
#[derive(Debug)]
pub struct Fetcher {
    client: reqwest::Client,
    settings: KeyFetchSettings,
}

impl Fetcher {
    /// A client with the connect and total timeouts and no redirects.
    pub fn new(settings: &KeyFetchSettings) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(u64::from(
                settings.connect_timeout_ms,
            )))
            .timeout(Duration::from_millis(u64::from(settings.timeout_ms)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("greenlight/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            settings: settings.clone(),
        })
    }

    /// GETs `url` as JSON: status 200, at most `max_bytes`. Returns the
    /// body and the response's freshness in seconds, if it states one.
    async fn get(&self, url: &str) -> Result<(String, Option<u64>), String> {
        let url = check_url(url, &self.settings)?;
        let mut response = self
            .client
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("GET {url}: {}", describe(&e)))?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            return Err(format!("GET {url}: status {}", status.as_u16()));
        }
        let cap = usize::try_from(self.settings.max_bytes).unwrap_or(usize::MAX);
        if response
            .content_length()
            .is_some_and(|n| n > u64::from(self.settings.max_bytes))
        {
            return Err(format!("GET {url}: the body is larger than {cap} bytes"));
        }
        let max_age = freshness(response.headers());
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("GET {url}: {}", describe(&e)))?
        {
            if body.len() + chunk.len() > cap {
                return Err(format!("GET {url}: the body is larger than {cap} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        let body =
            String::from_utf8(body).map_err(|_| format!("GET {url}: the body is not UTF-8"))?;
        Ok((body, max_age))
    }

    /// GETs `url` as a JSON document, with the same limits as key fetches.
    pub async fn document(&self, url: &str) -> Result<Value, String> {
        let (body, _) = self.get(url).await?;
        serde_json::from_str(&body).map_err(|e| format!("GET {url}: not JSON: {e}"))
    }

    /// The HTTP client, with the connect and total timeouts and no
    /// redirects.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Checks that `url` may be fetched under this fetcher's settings.
    pub fn check(&self, url: &str) -> Result<reqwest::Url, String> {
        check_url(url, &self.settings)
    }

    /// Finds the issuer's `jwks_uri` from the first of its metadata
    /// documents that answers (OpenID Connect Discovery 1.0 §4, RFC 8414
    /// §3); the document's `issuer` must be exactly the issuer's.
    pub async fn discover(&self, issuer: &str, urls: &[String]) -> Result<String, String> {
        let mut errors = Vec::new();
        for url in urls {
            match self.get(url).await.and_then(|(body, _)| {
                let doc: Value =
                    serde_json::from_str(&body).map_err(|e| format!("{url}: not JSON: {e}"))?;
                if doc.get("issuer").and_then(Value::as_str) != Some(issuer) {
                    return Err(format!("{url}: its `issuer` is not `{issuer}`"));
                }
                let uri = doc
                    .get("jwks_uri")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("{url}: no `jwks_uri`"))?;
                let jwks = check_url(uri, &self.settings)
                    .map_err(|e| format!("{url}: jwks_uri {e}"))?;
                // The metadata names where to fetch from: only on the
                // issuer's own host (and port), so that a provider cannot
                // send the server to another machine of its network. A
                // provider whose keys live elsewhere is named with
                // `jwks_uri` in the bundle.
                let own = check_url(url, &self.settings)?;
                if (jwks.host_str(), jwks.port_or_known_default())
                    != (own.host_str(), own.port_or_known_default())
                {
                    return Err(format!(
                        "{url}: its jwks_uri `{uri}` is not on the issuer's host; to trust it, name it as `jwks_uri` in the bundle"
                    ));
                }
                Ok(uri.to_owned())
            }) {
                Ok(uri) => return Ok(uri),
                Err(e) => errors.push(e),
            }
        }
        Err(format!("discovery failed: {}", errors.join("; ")))
    }

    /// Fetches a key set; refuses one that is not a JSON object with a
    /// `keys` array (the engine checks the keys themselves).
    pub async fn jwks(&self, url: &str) -> Result<Fetched, String> {
        let (body, max_age) = self.get(url).await?;
        let doc: Value =
            serde_json::from_str(&body).map_err(|e| format!("GET {url}: not JSON: {e}"))?;
        let keys = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("GET {url}: not a JWKS (no `keys` array)"))?;
        let kids = keys
            .iter()
            .filter_map(|k| k.get("kid").and_then(Value::as_str).map(str::to_owned))
            .collect();
        Ok(Fetched {
            body,
            kids,
            max_age,
        })
    }
}

/// A reqwest error with its cause, which its own message leaves out.
fn describe(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "cannot connect".to_owned()
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// How long a response stays fresh (RFC 9111 §4.2.1): `no-store` or
/// `no-cache` makes it 0, then `max-age`, then `Expires` less `Date`.
fn freshness(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    if let Some(cc) = headers.get(CACHE_CONTROL).and_then(|v| v.to_str().ok()) {
        let mut max_age = None;
        for directive in cc.split(',').map(str::trim) {
            let lower = directive.to_ascii_lowercase();
            if lower == "no-store" || lower == "no-cache" {
                return Some(0);
            }
            if let Some(n) = lower.strip_prefix("max-age=") {
                max_age = n.trim_matches('"').parse::<u64>().ok();
            }
        }
        if max_age.is_some() {
            return max_age;
        }
    }
    let expires = headers.get(EXPIRES).and_then(|v| v.to_str().ok())?;
    let Ok(expires) = httpdate::parse_http_date(expires) else {
        // An invalid Expires means already expired (RFC 9111 §5.3).
        return Some(0);
    };
    let date = headers
        .get(DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|d| httpdate::parse_http_date(d).ok())
        .unwrap_or_else(SystemTime::now);
    Some(expires.duration_since(date).map_or(0, |d| d.as_secs()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    fn headers(pairs: &[(reqwest::header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k, HeaderValue::from_str(v).expect("header value"));
        }
        h
    }

    #[test]
    fn freshness_follows_cache_control_then_expires() {
        assert_eq!(
            freshness(&headers(&[(CACHE_CONTROL, "public, max-age=600")])),
            Some(600)
        );
        assert_eq!(
            freshness(&headers(&[(CACHE_CONTROL, "max-age=600, no-cache")])),
            Some(0)
        );
        assert_eq!(freshness(&headers(&[(CACHE_CONTROL, "no-store")])), Some(0));
        assert_eq!(
            freshness(&headers(&[
                (DATE, "Sat, 28 Nov 2026 10:00:00 GMT"),
                (EXPIRES, "Sat, 28 Nov 2026 11:00:00 GMT"),
            ])),
            Some(3600)
        );
        assert_eq!(
            freshness(&headers(&[
                (CACHE_CONTROL, "max-age=60"),
                (DATE, "Sat, 28 Nov 2026 10:00:00 GMT"),
                (EXPIRES, "Sat, 28 Nov 2026 11:00:00 GMT"),
            ])),
            Some(60)
        );
        assert_eq!(freshness(&headers(&[(EXPIRES, "0")])), Some(0));
        assert_eq!(freshness(&headers(&[])), None);
    }

    #[test]
    fn only_https_or_allowed_loopback_http_is_fetched() {
        let mut s = KeyFetchSettings::default();
        assert!(check_url("https://idp.example.com/jwks", &s).is_ok());
        assert_eq!(
            check_url("http://idp.example.com/jwks", &s)
                .err()
                .as_deref(),
            Some("`http://idp.example.com/jwks` is not HTTPS")
        );
        assert_eq!(
            check_url("http://127.0.0.1:8080/jwks", &s).err().as_deref(),
            Some(
                "`http://127.0.0.1:8080/jwks` is plain HTTP: allowed for loopback only with `[key_fetch] allow_http_loopback = true`"
            )
        );
        s.allow_http_loopback = true;
        assert!(check_url("http://127.0.0.1:8080/jwks", &s).is_ok());
        assert!(check_url("http://[::1]:8080/jwks", &s).is_ok());
        assert!(check_url("http://localhost/jwks", &s).is_ok());
        assert_eq!(
            check_url("http://10.0.0.1/jwks", &s).err().as_deref(),
            Some("`http://10.0.0.1/jwks` is not HTTPS")
        );
        assert_eq!(
            check_url("file:///etc/passwd", &s).err().as_deref(),
            Some("`file:///etc/passwd` is not HTTPS")
        );
    }
}
