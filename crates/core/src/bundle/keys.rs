//! `[[issuers]]`, `[action_tokens]` and the key sets they name.

use std::collections::BTreeMap;

use super::{CONFIG_FILE, Problems, find_at};
use crate::config::{Config, DEFAULT_LEEWAY_SECONDS};
use crate::jws::{Alg, KeySet};
use crate::token::Issuer;
use greenlight_types::ProblemKind;
use greenlight_types::bundle::KeySource;

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

/// The access-token issuers, each with its allow-list and keys.
pub(super) fn issuers(
    config: &Config,
    cfg_text: &str,
    map: &BTreeMap<&str, &str>,
    problems: &mut Problems,
) -> Vec<Issuer> {
    let mut issuers = Vec::new();
    for ic in &config.issuers {
        let anchor = format!("\"{}\"", ic.issuer);
        let at = find_at(cfg_text, &anchor);
        let owner = format!("issuer `{}`", ic.issuer);
        let algorithms = parse_algorithms(&ic.algorithms, &owner, &anchor, cfg_text, problems);
        if issuers.iter().any(|i: &Issuer| i.issuer == ic.issuer) {
            problems.add(
                ProblemKind::InvalidConfig,
                CONFIG_FILE,
                at,
                format!("issuer `{}` is configured twice", ic.issuer),
            );
        }
        // `set-keys("greenlight", …)` addresses the action tokens' keys: an
        // access-token issuer of that name would have its fetched keys
        // verify action tokens.
        if ic.issuer == greenlight_types::bundle::ACTION_ISSUER_NAME {
            problems.add(
                ProblemKind::InvalidConfig,
                CONFIG_FILE,
                at,
                format!(
                    "issuer `{}` is the name reserved for Greenlight's own action tokens",
                    ic.issuer
                ),
            );
        }
        let (keys, source) = match (&ic.jwks, &ic.jwks_uri) {
            (Some(file), None) => (load_keys(map, file, cfg_text, problems), KeySource::Bundle),
            (None, Some(uri)) => (KeySet::default(), KeySource::JwksUri(uri.clone())),
            (None, None) => (
                KeySet::default(),
                KeySource::Discovery(discovery_urls(&ic.issuer)),
            ),
            (Some(_), Some(_)) => {
                problems.add(
                    ProblemKind::InvalidConfig,
                    CONFIG_FILE,
                    at,
                    format!(
                        "issuer `{}` names both `jwks` (a file) and `jwks_uri`: keep one",
                        ic.issuer
                    ),
                );
                (KeySet::default(), KeySource::Bundle)
            }
        };
        let hs = algorithms.contains(&Alg::HS256);
        let fetched: Vec<(&str, &String)> = match &source {
            KeySource::Bundle => Vec::new(),
            KeySource::JwksUri(u) => vec![("jwks_uri", u)],
            KeySource::Discovery(_) => vec![("issuer", &ic.issuer)],
        };
        if hs && !fetched.is_empty() {
            problems.add(
                ProblemKind::InvalidConfig,
                CONFIG_FILE,
                at,
                format!(
                    "issuer `{}` allows HS256, so its keys (a shared secret) must be in the bundle: a published secret is no secret",
                    ic.issuer
                ),
            );
        }
        for (what, url) in fetched {
            if let Err(e) = fetchable(url, config.key_fetch.allow_http_loopback) {
                problems.add(
                    ProblemKind::InvalidConfig,
                    CONFIG_FILE,
                    at,
                    format!(
                        "issuer `{}`: its keys are fetched from its {what} `{url}`, which {e}",
                        ic.issuer
                    ),
                );
            }
        }
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
        // The first issuer is authoritative for every group unless it says
        // otherwise; any other only for the groups it lists.
        let groups = match &ic.groups {
            Some(g) if g.iter().any(|n| n == "*") => None,
            Some(g) => Some(g.clone()),
            None if issuers.is_empty() => None,
            None => Some(Vec::new()),
        };
        for (name, value) in [
            ("approval_scope", &ic.approval_scope),
            ("subject_claim", &ic.subject_claim),
            ("client_claim", &ic.client_claim),
        ] {
            if value.as_deref() == Some("") {
                problems.add(
                    ProblemKind::InvalidConfig,
                    CONFIG_FILE,
                    at,
                    format!("issuer `{}` has an empty `{name}`", ic.issuer),
                );
            }
        }
        issuers.push(Issuer {
            issuer: ic.issuer.clone(),
            audience: ic.audience.clone(),
            algorithms,
            keys,
            source,
            keys_note: None,
            require_typ: ic.require_typ.clone(),
            leeway: ic.leeway.unwrap_or(DEFAULT_LEEWAY_SECONDS),
            groups,
            approver_clients: ic.approver_clients.clone(),
            approval_scope: ic.approval_scope.clone(),
            subject_claim: ic.subject_claim.clone().unwrap_or_else(|| "sub".to_owned()),
            client_claims: ic
                .client_claim
                .clone()
                .map_or_else(default_client_claims, |c| vec![c]),
        });
    }

    issuers
}

/// Greenlight's own action-token issuer, when `[action_tokens]` is set.
pub(super) fn action_issuer(
    config: &Config,
    cfg_text: &str,
    map: &BTreeMap<&str, &str>,
    issuers: &[Issuer],
    problems: &mut Problems,
) -> Option<Issuer> {
    config.action_tokens.as_ref().map(|ac| {
        let owner = "[action_tokens]";
        let algorithms = parse_algorithms(
            &ac.algorithms,
            "`[action_tokens]`",
            owner,
            cfg_text,
            problems,
        );
        if algorithms.contains(&Alg::HS256) {
            problems.add(
                ProblemKind::InvalidConfig,
                CONFIG_FILE,
                find_at(cfg_text, owner),
                "action tokens must be signed with a public-key algorithm, not HS256".to_owned(),
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
            Some(file) => load_keys(map, file, cfg_text, problems),
            None => KeySet::default(),
        };
        Issuer {
            issuer: ac.issuer.clone(),
            audience: ac.audience.clone(),
            algorithms,
            keys,
            // The host supplies them (the service: its own signing keys).
            source: KeySource::Bundle,
            keys_note: None,
            require_typ: Some(greenlight_types::ACTION_TOKEN_TYP.to_owned()),
            leeway: ac.leeway.unwrap_or(DEFAULT_LEEWAY_SECONDS),
            // Greenlight's tokens carry the groups their requester's issuer
            // was authoritative for; they never vote.
            groups: None,
            approver_clients: Vec::new(),
            approval_scope: None,
            // Greenlight writes these claims itself.
            subject_claim: "sub".to_owned(),
            client_claims: default_client_claims(),
        }
    })
}

/// Where an issuer's metadata is, in the order a host tries them: OpenID
/// Connect Discovery 1.0 §4 (`/.well-known/openid-configuration` after the
/// issuer), then RFC 8414 §3.1 (`/.well-known/oauth-authorization-server`
/// between the host and the issuer's path).
pub fn discovery_urls(issuer: &str) -> Vec<String> {
    let trimmed = issuer.trim_end_matches('/');
    let oidc = format!("{trimmed}/.well-known/openid-configuration");
    let (scheme, rest) = trimmed.split_once("://").unwrap_or(("https", trimmed));
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let oauth = format!("{scheme}://{authority}/.well-known/oauth-authorization-server{path}");
    vec![oidc, oauth]
}

/// Whether keys may be fetched from `url`: `Err` says why not. HTTPS, or
/// plain HTTP to a loopback address when `allow_http_loopback`.
pub fn fetchable(url: &str, allow_http_loopback: bool) -> Result<(), &'static str> {
    if let Some(rest) = url.strip_prefix("https://") {
        return if rest.is_empty() {
            Err("has no host")
        } else {
            Ok(())
        };
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return Err("is not an HTTPS URL");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    // The host follows any `user:password@` (RFC 3986 §3.2):
    // `http://127.0.0.1:80@evil.com/` goes to evil.com.
    let authority = authority.rsplit('@').next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback());
    match (loopback, allow_http_loopback) {
        (true, true) => Ok(()),
        (true, false) => Err(
            "is plain HTTP (allowed to loopback only with `[key_fetch] allow_http_loopback = true`)",
        ),
        (false, _) => Err("is not an HTTPS URL"),
    }
}

/// `client_id` (RFC 9068), else `azp` (OpenID Connect).
fn default_client_claims() -> Vec<String> {
    vec!["client_id".to_owned(), "azp".to_owned()]
}
