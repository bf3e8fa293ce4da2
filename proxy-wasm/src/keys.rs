//! Which keys the filter fetches, through which cluster, and when: the
//! approval service's own (to verify the action tokens it mints) and each
//! `jwks_uri` issuer's. A source never fetched is retried every few
//! seconds; its issuer's tokens are refused until it answers.

use greenlight_types::BundleInfo;
use greenlight_types::bundle::{ACTION_ISSUER_NAME, KeySource};

use crate::config::Config;

/// How soon a source that has never answered is asked again, in seconds.
pub const RETRY_SECONDS: u64 = 5;

/// One set of keys to fetch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// The issuer the keys are for (`greenlight` for action tokens).
    pub issuer: String,
    /// The proxy's cluster to call.
    pub cluster: String,
    /// The `:authority` of the call.
    pub authority: String,
    /// The `:path` of the call.
    pub path: String,
    /// When it last answered with keys the engine took.
    pub loaded_at: Option<u64>,
    /// When it was last asked.
    pub asked_at: Option<u64>,
    /// Whether a call is in flight.
    pub in_flight: bool,
    /// When a request last found a `kid` these keys lack.
    pub unknown_kid_at: Option<u64>,
    /// Whether the keys were withdrawn for being too stale (until keys
    /// load again).
    pub withdrawn: bool,
}

/// Every source of keys for one configuration.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    /// In order: the service's keys first.
    pub list: Vec<Source>,
    refresh: u64,
    unknown_kid_interval: u64,
    max_stale: u64,
    /// The largest key set accepted, in bytes (`[key_fetch] max_bytes`).
    pub max_bytes: usize,
}

impl Sources {
    /// The sources the bundle and the configuration call for. An issuer
    /// with `jwks_uri` needs a cluster; one using discovery is refused
    /// (name its `jwks_uri` instead).
    pub fn new(info: &BundleInfo, config: &Config) -> Result<Self, String> {
        let mut list = vec![Source::new(
            ACTION_ISSUER_NAME,
            &config.service.cluster,
            &config.service.authority,
            "/.well-known/jwks.json",
        )];
        for issuer in &info.issuers {
            match &issuer.keys {
                KeySource::Bundle => {}
                KeySource::JwksUri(url) => {
                    let Some(c) = config.issuers.get(&issuer.issuer) else {
                        return Err(format!(
                            "issuer `{}` fetches its keys from {url}: name the cluster that reaches it in [issuers.\"{}\"]",
                            issuer.issuer, issuer.issuer
                        ));
                    };
                    let (authority, path) = split_url(url)?;
                    list.push(Source::new(&issuer.issuer, &c.cluster, &authority, &path));
                }
                KeySource::Discovery(_) => {
                    return Err(format!(
                        "issuer `{}` uses discovery, which the proxy-wasm filter does not do: give it `jwks_uri`",
                        issuer.issuer
                    ));
                }
            }
        }
        Ok(Self {
            list,
            refresh: config.key_refresh_seconds.max(1),
            unknown_kid_interval: info.key_fetch.unknown_kid_interval_seconds,
            max_stale: info.key_fetch.max_stale_seconds,
            max_bytes: usize::try_from(info.key_fetch.max_bytes).unwrap_or(usize::MAX),
        })
    }

    /// The sources to ask now.
    pub fn due(&self, now: u64) -> Vec<usize> {
        self.list
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.in_flight)
            .filter(|(_, s)| {
                let every = if s.loaded_at.is_some() {
                    self.refresh
                } else {
                    RETRY_SECONDS
                };
                let stale = s.asked_at.is_none_or(|t| now >= t.saturating_add(every));
                let kid = s.unknown_kid_at.is_some_and(|k| {
                    s.asked_at.is_none_or(|t| {
                        k >= t && now >= t.saturating_add(self.unknown_kid_interval)
                    })
                });
                stale || kid
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// The sources whose keys are too stale to keep serving: loaded, not
    /// refreshed for `key_refresh_seconds` plus the bundle's
    /// `max_stale_seconds` (every fetch since failed), and not withdrawn
    /// yet. Their issuers' tokens are then refused until a fetch works.
    pub fn stale(&self, now: u64) -> Vec<usize> {
        self.list
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                !s.withdrawn
                    && s.loaded_at.is_some_and(|t| {
                        now > t
                            .saturating_add(self.refresh)
                            .saturating_add(self.max_stale)
                    })
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// A request met a `kid` that `issuer`'s keys lack: ask again soon,
    /// no more often than the bundle's `unknown_kid_interval_seconds`.
    pub fn unknown_kid(&mut self, issuer: &str, now: u64) {
        if let Some(s) = self.list.iter_mut().find(|s| s.issuer == issuer) {
            s.unknown_kid_at = Some(now);
        }
    }
}

impl Source {
    fn new(issuer: &str, cluster: &str, authority: &str, path: &str) -> Self {
        Self {
            issuer: issuer.to_owned(),
            cluster: cluster.to_owned(),
            authority: authority.to_owned(),
            path: path.to_owned(),
            loaded_at: None,
            asked_at: None,
            in_flight: false,
            unknown_kid_at: None,
            withdrawn: false,
        }
    }
}

/// `https://host:port/path?q` as (`host:port`, `/path?q`).
fn split_url(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("`{url}` is not an http(s) URL"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(format!("`{url}` names no host"));
    }
    Ok((authority.to_owned(), path.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_authority_and_path() {
        assert_eq!(
            split_url("https://idp.example.com:8443/oauth/jwks?x=1"),
            Ok((
                "idp.example.com:8443".to_owned(),
                "/oauth/jwks?x=1".to_owned()
            ))
        );
        assert_eq!(
            split_url("http://idp"),
            Ok(("idp".to_owned(), "/".to_owned()))
        );
        assert_eq!(
            split_url("ftp://idp/x"),
            Err("`ftp://idp/x` is not an http(s) URL".to_owned())
        );
        assert_eq!(
            split_url("https:///x"),
            Err("`https:///x` names no host".to_owned())
        );
    }

    fn sources() -> Sources {
        let mut s = Sources {
            list: vec![Source::new(
                "greenlight",
                "gl",
                "gl",
                "/.well-known/jwks.json",
            )],
            refresh: 300,
            unknown_kid_interval: 30,
            max_stale: 3600,
            max_bytes: 1024,
        };
        s.list[0].asked_at = Some(1000);
        s
    }

    #[test]
    fn a_source_never_loaded_is_retried_every_few_seconds() {
        let s = sources();
        assert_eq!(s.due(1000 + RETRY_SECONDS - 1), Vec::<usize>::new());
        assert_eq!(s.due(1000 + RETRY_SECONDS), vec![0]);
    }

    #[test]
    fn a_loaded_source_is_refreshed_at_its_interval_or_on_an_unknown_kid() {
        let mut s = sources();
        s.list[0].loaded_at = Some(1000);
        assert!(s.due(1299).is_empty());
        assert_eq!(s.due(1300), vec![0]);
        // An unknown kid asks again, but not before the interval.
        s.unknown_kid("greenlight", 1010);
        assert!(s.due(1020).is_empty());
        assert_eq!(s.due(1030), vec![0]);
        // Not while a call is in flight.
        s.list[0].in_flight = true;
        assert!(s.due(1030).is_empty());
    }

    #[test]
    fn keys_not_refreshed_past_their_staleness_are_withdrawn_once() {
        let mut s = sources();
        assert!(
            s.stale(1_000_000).is_empty(),
            "never loaded: nothing to withdraw"
        );
        s.list[0].loaded_at = Some(1000);
        assert!(s.stale(1000 + 300 + 3600).is_empty());
        assert_eq!(s.stale(1000 + 300 + 3601), vec![0]);
        s.list[0].withdrawn = true;
        assert!(s.stale(1000 + 300 + 3601).is_empty());
    }
}
