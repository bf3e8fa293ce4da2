//! `[[issuers]]`, `[action_tokens]` and the key sets they name.

use std::collections::BTreeMap;

use super::{CONFIG_FILE, Problems, find_at};
use crate::config::{Config, DEFAULT_LEEWAY_SECONDS};
use crate::jws::{Alg, KeySet};
use crate::token::Issuer;
use greenlight_types::ProblemKind;

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
        let keys = match (&ic.jwks, &ic.jwks_uri) {
            (Some(file), None) => load_keys(map, file, cfg_text, problems),
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

/// `client_id` (RFC 9068), else `azp` (OpenID Connect).
fn default_client_claims() -> Vec<String> {
    vec!["client_id".to_owned(), "azp".to_owned()]
}
