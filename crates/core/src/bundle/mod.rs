//! Loading a bundle from `(name, contents)` pairs, reporting every problem
//! with its file, line and column.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::claims::{self, Mapping};
use crate::config::Config;
use crate::jws::{Alg, KeySet};
use crate::policy::{Policies, valid_entity_type};
use crate::routes::Route;
use crate::token::Issuer;

mod keys;
mod policies;
mod routes;

pub use greenlight_types::bundle::{
    ACTION_ISSUER_NAME, CONFIG_FILE, ENTITIES_FILE, POLICY_FILE, SCHEMA_FILE,
};
pub use greenlight_types::{LoadError, Problem, ProblemKind};

/// A validated bundle.
#[derive(Clone, Debug)]
pub struct Bundle {
    /// The parsed configuration.
    pub config: Config,
    /// Access-token issuers.
    pub issuers: Vec<Issuer>,
    /// Greenlight's action-token issuer.
    pub action_issuer: Option<Issuer>,
    /// Compiled routes.
    pub routes: Vec<Route>,
    /// Cedar policies with obligations.
    pub policies: Policies,
    /// The principal attributes mapped from claims.
    pub attributes: Vec<Mapping>,
    /// Hex SHA-256 over the files.
    pub hash: String,
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (u32, u32) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(col).unwrap_or(u32::MAX),
    )
}

/// Hex SHA-256 over the files, sorted by name, each as length-prefixed name
/// and contents, so no two different bundles share a hash.
pub fn bundle_hash(files: &BTreeMap<&str, &str>) -> String {
    let mut h = Sha256::new();
    for (name, contents) in files {
        h.update((name.len() as u64).to_be_bytes());
        h.update(name.as_bytes());
        h.update((contents.len() as u64).to_be_bytes());
        h.update(contents.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The problems found so far.
pub(super) struct Problems(Vec<Problem>);

impl Problems {
    pub(super) fn add(
        &mut self,
        kind: ProblemKind,
        file: &str,
        at: Option<(u32, u32)>,
        message: String,
    ) {
        self.0.push(Problem {
            kind,
            file: file.to_owned(),
            line: at.map(|a| a.0),
            column: at.map(|a| a.1),
            message,
        });
    }
}

/// Where `needle` first appears in `text`, as line and column.
pub(crate) fn find_at(text: &str, needle: &str) -> Option<(u32, u32)> {
    text.find(needle).map(|o| line_col(text, o))
}

/// The files by name; a name given twice and a private key are problems.
fn file_map<'a>(
    files: &'a [(String, String)],
    problems: &mut Problems,
) -> BTreeMap<&'a str, &'a str> {
    let mut map: BTreeMap<&str, &str> = BTreeMap::new();
    for (name, contents) in files {
        if map.insert(name, contents).is_some() {
            problems.add(
                ProblemKind::InvalidConfig,
                name,
                None,
                format!("file `{name}` is given twice"),
            );
        }
        if contents.contains("PRIVATE KEY") {
            problems.add(
                ProblemKind::InvalidKeys,
                name,
                find_at(contents, "PRIVATE KEY"),
                "private keys must not be part of a bundle: the engine only needs public keys"
                    .to_owned(),
            );
        }
    }
    map
}

/// `[principal]` names a Cedar entity type; `[dev]` signs for an issuer.
fn check_principal_and_dev(config: &Config, cfg_text: &str, problems: &mut Problems) {
    if let Some(dev) = &config.dev
        && !config.issuers.iter().any(|i| i.issuer == dev.issuer)
    {
        problems.add(
            ProblemKind::InvalidConfig,
            CONFIG_FILE,
            find_at(cfg_text, "[dev]"),
            format!("`[dev]` signs for `{}`, which is not an issuer", dev.issuer),
        );
    }
    if !valid_entity_type(&config.principal.entity_type) {
        problems.add(
            ProblemKind::InvalidConfig,
            CONFIG_FILE,
            find_at(cfg_text, "[principal]"),
            format!(
                "`{}` is not a Cedar entity type name",
                config.principal.entity_type
            ),
        );
    }
}

/// `[key_fetch]`: limits a host can honour.
fn check_key_fetch(config: &Config, cfg_text: &str, problems: &mut Problems) {
    let k = &config.key_fetch;
    let mut refuse = |message: String| {
        problems.add(
            ProblemKind::InvalidConfig,
            CONFIG_FILE,
            find_at(cfg_text, "[key_fetch]"),
            message,
        );
    };
    for (name, value) in [
        ("connect_timeout_ms", u64::from(k.connect_timeout_ms)),
        ("timeout_ms", u64::from(k.timeout_ms)),
        ("max_bytes", u64::from(k.max_bytes)),
        ("min_age_seconds", k.min_age_seconds),
        (
            "unknown_kid_interval_seconds",
            k.unknown_kid_interval_seconds,
        ),
    ] {
        if value == 0 {
            refuse(format!("`[key_fetch] {name}` must be more than 0"));
        }
    }
    if k.max_bytes > MAX_KEY_FETCH_BYTES {
        refuse(format!(
            "`[key_fetch] max_bytes` is {}, more than the largest allowed ({MAX_KEY_FETCH_BYTES})",
            k.max_bytes
        ));
    }
    if k.min_age_seconds > k.max_age_seconds {
        refuse(format!(
            "`[key_fetch] min_age_seconds` ({}) is more than `max_age_seconds` ({})",
            k.min_age_seconds, k.max_age_seconds
        ));
    }
}

/// Where attribute `name` is mapped in `greenlight.toml` (its own table,
/// else the `[principal.attributes]` table or line).
fn attribute_at(cfg_text: &str, name: &str) -> Option<(u32, u32)> {
    (!name.is_empty())
        .then(|| find_at(cfg_text, &format!("[principal.attributes.{name}]")))
        .flatten()
        .or_else(|| find_at(cfg_text, "[principal.attributes"))
        .or_else(|| find_at(cfg_text, "attributes"))
}

/// The largest key-fetch response a bundle may allow: 16 MiB.
const MAX_KEY_FETCH_BYTES: u32 = 16 * 1024 * 1024;

impl Bundle {
    /// Validates and loads a bundle; on failure lists every problem found,
    /// file by file: the set of files, `greenlight.toml` (issuers and their
    /// key sets, action tokens, routes, principal, `[dev]`), then
    /// `policy.cedar` with `schema.cedarschema`, then `entities.json`.
    pub fn load(files: &[(String, String)]) -> Result<Self, LoadError> {
        let mut problems = Problems(Vec::new());
        let map = file_map(files, &mut problems);
        let Some(cfg_text) = map.get(CONFIG_FILE).copied() else {
            problems.add(
                ProblemKind::MissingFile,
                CONFIG_FILE,
                None,
                format!("every bundle needs `{CONFIG_FILE}`"),
            );
            if !map.contains_key(POLICY_FILE) {
                problems.add(
                    ProblemKind::MissingFile,
                    POLICY_FILE,
                    None,
                    format!("every bundle needs `{POLICY_FILE}`"),
                );
            }
            return Err(LoadError::InvalidBundle(problems.0));
        };
        let config: Config = match toml::from_str(cfg_text) {
            Ok(c) => c,
            Err(e) => {
                let at = e.span().map(|s| line_col(cfg_text, s.start));
                problems.add(
                    ProblemKind::InvalidConfig,
                    CONFIG_FILE,
                    at,
                    e.message().to_owned(),
                );
                return Err(LoadError::InvalidBundle(problems.0));
            }
        };
        let issuers = keys::issuers(&config, cfg_text, &map, &mut problems);
        let action_issuer = keys::action_issuer(&config, cfg_text, &map, &issuers, &mut problems);
        check_principal_and_dev(&config, cfg_text, &mut problems);
        check_key_fetch(&config, cfg_text, &mut problems);
        let routes = routes::routes(&config, cfg_text, &mut problems);
        let issuer_names: Vec<&str> = config.issuers.iter().map(|i| i.issuer.as_str()).collect();
        let attributes = match claims::mappings(&config.principal.attributes, &issuer_names) {
            Ok(m) => m,
            Err(errors) => {
                for (name, message) in errors {
                    let at = attribute_at(cfg_text, &name);
                    problems.add(ProblemKind::InvalidConfig, CONFIG_FILE, at, message);
                }
                Vec::new()
            }
        };
        let mut policies = policies::policies(&map, config.approvals.default_ttl, &mut problems);
        if let Some(p) = &mut policies {
            for (name, message) in p.check_principal(&config.principal.entity_type, &attributes) {
                let at = attribute_at(cfg_text, &name);
                problems.add(ProblemKind::InvalidSchema, CONFIG_FILE, at, message);
            }
            policies::entity_data(&map, &config, &attributes, p, &mut problems);
        }
        match policies {
            Some(policies) if problems.0.is_empty() => Ok(Self {
                hash: bundle_hash(&map),
                config,
                issuers,
                action_issuer,
                routes,
                policies,
                attributes,
            }),
            _ => Err(LoadError::InvalidBundle(problems.0)),
        }
    }

    /// Replaces one issuer's keys (`greenlight` names the action-token
    /// issuer). A key that cannot be used is left out while others remain
    /// ([`KeySet::from_fetched_jwks`]).
    pub fn set_keys(&mut self, issuer: &str, jwks: &str) -> Result<(), LoadError> {
        // A host fetched these from the provider: a key Greenlight cannot
        // use is left out, not allowed to take the others with it.
        let (keys, _skipped) = KeySet::from_fetched_jwks(jwks).map_err(|e| {
            LoadError::InvalidBundle(vec![Problem {
                kind: ProblemKind::InvalidKeys,
                file: format!("jwks of `{issuer}`"),
                line: e.line.and_then(|l| u32::try_from(l).ok()),
                column: e.column.and_then(|c| u32::try_from(c).ok()),
                message: e.message,
            }])
        })?;
        let target = if issuer == ACTION_ISSUER_NAME {
            self.action_issuer.as_mut()
        } else {
            self.issuers.iter_mut().find(|i| i.issuer == issuer)
        }
        .ok_or_else(|| LoadError::Other(format!("the bundle has no issuer `{issuer}`")))?;
        let hs = target.algorithms.contains(&Alg::HS256);
        if keys.has_shared_secret() && !hs {
            return Err(LoadError::Other(format!(
                "issuer `{issuer}` does not allow HS256, so its keys cannot include a shared secret"
            )));
        }
        target.keys = keys;
        target.keys_note = None;
        Ok(())
    }

    /// Removes one issuer's keys, so its tokens are denied with
    /// `token-unknown-key` saying `reason` (a host's last fetch error, or
    /// that the keys grew too stale).
    pub fn withdraw_keys(&mut self, issuer: &str, reason: &str) -> Result<(), LoadError> {
        let target = if issuer == ACTION_ISSUER_NAME {
            self.action_issuer.as_mut()
        } else {
            self.issuers.iter_mut().find(|i| i.issuer == issuer)
        }
        .ok_or_else(|| LoadError::Other(format!("the bundle has no issuer `{issuer}`")))?;
        target.keys = KeySet::default();
        target.keys_note = Some(reason.to_owned());
        Ok(())
    }
}
