//! Loading a bundle from `(name, contents)` pairs, reporting every problem
//! with its file, line and column.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{Config, DEFAULT_LEEWAY_SECONDS};
use crate::jws::{Alg, KeySet};
use crate::policy::{Policies, valid_entity_type};
use crate::routes::Route;
use crate::token::Issuer;

/// The configuration file every bundle has.
pub const CONFIG_FILE: &str = "greenlight.toml";
/// The policy file every bundle has.
pub const POLICY_FILE: &str = "policy.cedar";
/// The optional schema file.
pub const SCHEMA_FILE: &str = "schema.cedarschema";
/// The name `set-keys` uses for Greenlight's own action-token issuer.
pub const ACTION_ISSUER_NAME: &str = "greenlight";

/// What kind of problem a bundle has (the WIT `problem-kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProblemKind {
    /// A required file is absent.
    MissingFile,
    /// `greenlight.toml` is invalid.
    InvalidConfig,
    /// `policy.cedar` is invalid.
    InvalidPolicy,
    /// `schema.cedarschema` is invalid, or a policy violates it.
    InvalidSchema,
    /// A key set is invalid.
    InvalidKeys,
}

/// One problem in a bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// Its class.
    pub kind: ProblemKind,
    /// The file it is in.
    pub file: String,
    /// 1-based line, where known.
    pub line: Option<u32>,
    /// 1-based column, where known.
    pub column: Option<u32>,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "{}:{l}:{c}: {}", self.file, self.message),
            (Some(l), None) => write!(f, "{}:{l}: {}", self.file, self.message),
            _ => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Why a bundle or key set was refused (the WIT `load-error`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// Every problem found.
    #[error("the bundle has {} problem(s): {}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    InvalidBundle(Vec<Problem>),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

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

struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, kind: ProblemKind, file: &str, at: Option<(u32, u32)>, message: String) {
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
fn find_at(text: &str, needle: &str) -> Option<(u32, u32)> {
    text.find(needle).map(|o| line_col(text, o))
}

/// Parses an algorithm allow-list; `owner` names its table in messages and
/// `anchor` is text that locates it in the file.
fn parse_algorithms(
    names: &[String],
    owner: &str,
    anchor: &str,
    cfg_text: &str,
    problems: &mut Problems,
) -> Vec<Alg> {
    let mut out = Vec::new();
    if names.is_empty() {
        problems.add(
            ProblemKind::InvalidConfig,
            CONFIG_FILE,
            find_at(cfg_text, anchor),
            format!("{owner} allows no algorithms"),
        );
    }
    for name in names {
        match Alg::parse(name) {
            Some(a) => out.push(a),
            None => problems.add(
                ProblemKind::InvalidConfig,
                CONFIG_FILE,
                find_at(cfg_text, &format!("\"{name}\"")),
                format!(
                    "{owner} allows `{name}`, which is not supported (use EdDSA, ES256, ES384, RS256, RS384, RS512, PS256, PS384, PS512 or HS256)"
                ),
            ),
        }
    }
    out
}

fn load_keys(
    files: &BTreeMap<&str, &str>,
    file: &str,
    cfg_text: &str,
    problems: &mut Problems,
) -> KeySet {
    let Some(text) = files.get(file) else {
        problems.add(
            ProblemKind::MissingFile,
            file,
            None,
            format!("key set `{file}` is named in {CONFIG_FILE} but not in the bundle"),
        );
        let _ = cfg_text;
        return KeySet::default();
    };
    match KeySet::from_jwks(text) {
        Ok(k) => k,
        Err(e) => {
            let at = e.line.zip(e.column).map(|(l, c)| {
                (
                    u32::try_from(l).unwrap_or(u32::MAX),
                    u32::try_from(c).unwrap_or(u32::MAX),
                )
            });
            problems.add(ProblemKind::InvalidKeys, file, at, e.message);
            KeySet::default()
        }
    }
}

impl Bundle {
    /// Validates and loads a bundle; on failure lists every problem found.
    pub fn load(files: &[(String, String)]) -> Result<Self, LoadError> {
        let mut problems = Problems(Vec::new());
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

        let mut issuers = Vec::new();
        for ic in &config.issuers {
            let anchor = format!("\"{}\"", ic.issuer);
            let at = find_at(cfg_text, &anchor);
            let owner = format!("issuer `{}`", ic.issuer);
            let algorithms =
                parse_algorithms(&ic.algorithms, &owner, &anchor, cfg_text, &mut problems);
            if issuers.iter().any(|i: &Issuer| i.issuer == ic.issuer) {
                problems.add(
                    ProblemKind::InvalidConfig,
                    CONFIG_FILE,
                    at,
                    format!("issuer `{}` is configured twice", ic.issuer),
                );
            }
            let keys = match (&ic.jwks, &ic.jwks_uri) {
                (Some(file), None) => load_keys(&map, file, cfg_text, &mut problems),
                (None, Some(_)) => KeySet::default(),
                _ => {
                    problems.add(
                        ProblemKind::InvalidConfig,
                        CONFIG_FILE,
                        at,
                        format!(
                            "issuer `{}` needs exactly one of `jwks` (a file) and `jwks_uri`",
                            ic.issuer
                        ),
                    );
                    KeySet::default()
                }
            };
            let hs = algorithms.contains(&Alg::HS256);
            if hs && !keys.is_empty() && !keys.has_shared_secret() {
                problems.add(
                    ProblemKind::InvalidConfig,
                    CONFIG_FILE,
                    at,
                    format!(
                        "issuer `{}` allows HS256 but its key set has no shared secret (`kty: oct`)",
                        ic.issuer
                    ),
                );
            }
            if !hs && keys.has_shared_secret() {
                problems.add(
                    ProblemKind::InvalidKeys,
                    ic.jwks.as_deref().unwrap_or(CONFIG_FILE),
                    None,
                    format!(
                        "issuer `{}` has a shared secret but does not allow HS256",
                        ic.issuer
                    ),
                );
            }
            issuers.push(Issuer {
                issuer: ic.issuer.clone(),
                audience: ic.audience.clone(),
                algorithms,
                keys,
                require_typ: ic.require_typ.clone(),
                leeway: ic.leeway.unwrap_or(DEFAULT_LEEWAY_SECONDS),
            });
        }

        let action_issuer = config.action_tokens.as_ref().map(|ac| {
            let owner = "[action_tokens]";
            let algorithms = parse_algorithms(
                &ac.algorithms,
                "`[action_tokens]`",
                owner,
                cfg_text,
                &mut problems,
            );
            if algorithms.contains(&Alg::HS256) {
                problems.add(
                    ProblemKind::InvalidConfig,
                    CONFIG_FILE,
                    find_at(cfg_text, owner),
                    "action tokens must be signed with a public-key algorithm, not HS256"
                        .to_owned(),
                );
            }
            if issuers.iter().any(|i| i.issuer == ac.issuer) {
                problems.add(
                    ProblemKind::InvalidConfig,
                    CONFIG_FILE,
                    find_at(cfg_text, owner),
                    format!(
                        "action-token issuer `{}` is also an access-token issuer",
                        ac.issuer
                    ),
                );
            }
            let keys = match &ac.jwks {
                Some(file) => load_keys(&map, file, cfg_text, &mut problems),
                None => KeySet::default(),
            };
            Issuer {
                issuer: ac.issuer.clone(),
                audience: ac.audience.clone(),
                algorithms,
                keys,
                require_typ: Some("at+jwt".to_owned()),
                leeway: ac.leeway.unwrap_or(DEFAULT_LEEWAY_SECONDS),
            }
        });

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

        let mut routes = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for rc in &config.routes {
            let at = find_at(cfg_text, &format!("\"{}\"", rc.path));
            let mut errs = match Route::compile(rc) {
                Ok(r) => {
                    if seen.insert((r.method.clone(), rc.path.clone())) {
                        routes.push(r);
                        Vec::new()
                    } else {
                        vec!["the route is defined twice".to_owned()]
                    }
                }
                Err(e) => e,
            };
            if !valid_entity_type(&rc.resource.entity_type) {
                errs.push(format!(
                    "resource type `{}` is not a Cedar entity type name",
                    rc.resource.entity_type
                ));
            }
            if rc.action.is_empty() {
                errs.push("the action is empty".to_owned());
            }
            for e in errs {
                problems.add(
                    ProblemKind::InvalidConfig,
                    CONFIG_FILE,
                    at,
                    format!("route `{} {}`: {e}", rc.method, rc.path),
                );
            }
        }

        let policies = match map.get(POLICY_FILE) {
            None => {
                problems.add(
                    ProblemKind::MissingFile,
                    POLICY_FILE,
                    None,
                    format!("every bundle needs `{POLICY_FILE}`"),
                );
                None
            }
            Some(src) => {
                let schema = map.get(SCHEMA_FILE).copied();
                match Policies::load(src, schema, config.approvals.default_ttl) {
                    Ok(p) => Some(p),
                    Err(errs) => {
                        for e in errs {
                            let (file, text, kind) = if e.in_schema {
                                (
                                    SCHEMA_FILE,
                                    schema.unwrap_or(""),
                                    ProblemKind::InvalidSchema,
                                )
                            } else if e.violates_schema {
                                (POLICY_FILE, *src, ProblemKind::InvalidSchema)
                            } else {
                                (POLICY_FILE, *src, ProblemKind::InvalidPolicy)
                            };
                            problems.add(
                                kind,
                                file,
                                e.offset.map(|o| line_col(text, o)),
                                e.message,
                            );
                        }
                        None
                    }
                }
            }
        };

        match policies {
            Some(policies) if problems.0.is_empty() => Ok(Self {
                hash: bundle_hash(&map),
                config,
                issuers,
                action_issuer,
                routes,
                policies,
            }),
            _ => Err(LoadError::InvalidBundle(problems.0)),
        }
    }

    /// Replaces one issuer's keys (`greenlight` names the action-token issuer).
    pub fn set_keys(&mut self, issuer: &str, jwks: &str) -> Result<(), LoadError> {
        let keys = KeySet::from_jwks(jwks).map_err(|e| {
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
        Ok(())
    }
}
