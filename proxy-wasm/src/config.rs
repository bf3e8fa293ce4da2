//! The plugin configuration: TOML, so the bundle's files read as they are
//! inside the proxy's own config (multi-line literal strings).
//!
//! ```toml
//! [service]                       # greenlight serve, as the proxy reaches it
//! cluster = "greenlight"          # the proxy's name for it (Envoy cluster)
//! authority = "127.0.0.1:8080"    # its Host
//! url = "http://127.0.0.1:8080"   # where clients ask, named in challenges
//! timeout_ms = 2000
//!
//! [bundle]                        # the bundle's files, by name
//! "greenlight.toml" = '''...'''
//! "policy.cedar" = '''...'''
//!
//! [issuers."https://idp.example.com"]   # for an issuer with `jwks_uri`
//! cluster = "idp"
//! ```

use std::collections::BTreeMap;

use greenlight_types::BundleInfo;
use serde::Deserialize;

/// The whole plugin configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The approval service.
    pub service: Service,
    /// The bundle's files, by name (`greenlight.toml`, `policy.cedar`,
    /// `schema.cedarschema`, `*.json`), as `greenlight serve` reads them
    /// from its folder.
    pub bundle: BTreeMap<String, String>,
    /// The largest request body read as parameters, in bytes; a larger one
    /// is refused (`request-invalid`), never decided without it.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// How often fetched keys are fetched again, in seconds.
    #[serde(default = "default_refresh")]
    pub key_refresh_seconds: u64,
    /// Where the keys of an issuer with `jwks_uri` are fetched: the proxy
    /// reaches hosts only through its own clusters.
    #[serde(default)]
    pub issuers: BTreeMap<String, IssuerCluster>,
    /// Whether a development bundle (one with a `[dev]` signing key, whose
    /// private key anyone may hold) is accepted, as `greenlight serve
    /// --dev`. Defaults to refusing one.
    #[serde(default)]
    pub development: bool,
    /// Decide at this Unix time instead of the proxy's clock. For the
    /// conformance vectors only (their tokens were minted for a fixed
    /// time): under it no token ever expires.
    #[serde(default)]
    pub test_fixed_now: Option<u64>,
}

/// The approval service as the proxy reaches it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// The proxy's name for it (an Envoy cluster).
    pub cluster: String,
    /// The `Host` (`:authority`) of calls to it.
    pub authority: String,
    /// Its base URL as clients reach it, named in challenges.
    pub url: String,
    /// How long a call may take, in milliseconds, before the request is
    /// refused (`engine-unavailable`).
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
}

/// The cluster an issuer's `jwks_uri` is fetched through.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerCluster {
    /// The proxy's name for the provider's host.
    pub cluster: String,
}

fn default_max_body() -> usize {
    64 * 1024
}

fn default_refresh() -> u64 {
    300
}

fn default_timeout() -> u64 {
    2000
}

impl Config {
    /// Reads the plugin configuration.
    pub fn parse(text: &str) -> Result<Self, String> {
        let config: Config =
            toml::from_str(text).map_err(|e| format!("the plugin configuration: {e}"))?;
        if config.bundle.is_empty() {
            return Err("the plugin configuration has no [bundle] files".to_owned());
        }
        if !config.service.url.starts_with("http://") && !config.service.url.starts_with("https://")
        {
            return Err(format!(
                "service.url must be an http(s) URL, not `{}`",
                config.service.url
            ));
        }
        Ok(config)
    }

    /// Refuses a development bundle unless `development = true`, and a
    /// fixed clock outside development.
    pub fn admits(&self, info: &BundleInfo) -> Result<(), String> {
        if self.test_fixed_now.is_some() && !self.development {
            return Err(
                "`test_fixed_now` stops every token from expiring: it is for the \
                        conformance tests, with `development = true`"
                    .to_owned(),
            );
        }
        if info.development && !self.development {
            return Err(
                "the bundle has a `[dev]` signing key: anyone holding it mints tokens \
                        the bundle accepts. Set `development = true` to run it anyway, or \
                        remove `[dev]`"
                    .to_owned(),
            );
        }
        Ok(())
    }

    /// The bundle's files, as the engine loads them.
    pub fn files(&self) -> Vec<(String, String)> {
        self.bundle
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_configuration_gets_the_defaults() {
        let c = Config::parse(
            "[service]\ncluster = \"gl\"\nauthority = \"127.0.0.1:8080\"\nurl = \"http://127.0.0.1:8080\"\n\
             [bundle]\n\"policy.cedar\" = '''permit (principal, action, resource);'''\n",
        )
        .expect("valid");
        assert_eq!(c.max_body_bytes, 65536);
        assert_eq!(c.key_refresh_seconds, 300);
        assert_eq!(c.service.timeout_ms, 2000);
        assert_eq!(
            c.files(),
            vec![(
                "policy.cedar".to_owned(),
                "permit (principal, action, resource);".to_owned()
            )]
        );
    }

    #[test]
    fn a_bad_configuration_says_what_is_wrong() {
        let err = Config::parse("[service]\ncluster = \"gl\"\n").expect_err("incomplete");
        assert!(err.starts_with("the plugin configuration: "), "{err}");
        assert!(err.contains("missing field `authority`"), "{err}");
        let err = Config::parse(
            "[service]\ncluster = \"gl\"\nauthority = \"a\"\nurl = \"http://a\"\n[bundle]\n",
        )
        .expect_err("no files");
        assert_eq!(err, "the plugin configuration has no [bundle] files");
        let err = Config::parse(
            "[service]\ncluster = \"gl\"\nauthority = \"a\"\nurl = \"a\"\n[bundle]\nx = \"y\"\n",
        )
        .expect_err("not a URL");
        assert_eq!(err, "service.url must be an http(s) URL, not `a`");
        let err = Config::parse(
            "surprise = 1\n[service]\ncluster = \"gl\"\nauthority = \"a\"\nurl = \"http://a\"\n[bundle]\nx = \"y\"\n",
        )
        .expect_err("unknown field");
        assert!(err.contains("unknown field `surprise`"), "{err}");
    }
}
