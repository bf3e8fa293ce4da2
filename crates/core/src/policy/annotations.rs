//! What Greenlight reads from a permit's annotations: the approval
//! obligation (`@approvers`, `@quorum`, `@ttl`, `@grant`, `@reason`,
//! `@message`) and the sign-in requirement (`@acr`, `@max_age`).

use greenlight_types::{Approver, GrantMode, Obligation};

/// The annotations Greenlight reads from a permit.
pub const OBLIGATION_ANNOTATIONS: &[&str] =
    &["approvers", "quorum", "ttl", "grant", "reason", "message"];

/// The annotations of a permit's sign-in requirement.
pub const STEP_UP_ANNOTATIONS: &[&str] = &["acr", "max_age"];

/// The sign-in a permit requires (`@acr`, `@max_age`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    /// Acceptable `acr` values; empty when any will do.
    pub acr: Vec<String>,
    /// The oldest acceptable `auth_time`, in seconds before the request.
    pub max_age: Option<u64>,
}

/// What a request shows of the sign-in behind it.
#[derive(Clone, Copy, Debug)]
pub struct SignIn<'a> {
    /// The token's `acr`.
    pub acr: Option<&'a str>,
    /// The token's `auth_time`.
    pub auth_time: Option<u64>,
    /// The time of the request.
    pub now: u64,
    /// Whether the requirements of permits with approvers do not apply
    /// (an action token: they were met when its approval was asked for).
    pub exempt: bool,
}

impl Requirement {
    /// What the sign-in lacks, or `None` when it meets the requirement.
    pub(super) fn shortfall(&self, s: &SignIn<'_>) -> Option<String> {
        if !self.acr.is_empty() && !s.acr.is_some_and(|a| self.acr.iter().any(|x| x == a)) {
            return Some(match s.acr {
                Some(a) => format!(
                    "the sign-in's class `{a}` is not one of `{}`",
                    self.acr.join(" ")
                ),
                None => format!(
                    "the token names no sign-in class (`acr`); one of `{}` is needed",
                    self.acr.join(" ")
                ),
            });
        }
        if let Some(max) = self.max_age {
            match s.auth_time {
                None => {
                    return Some(format!(
                        "the token does not say when the person signed in (`auth_time`); a sign-in within {max} seconds is needed"
                    ));
                }
                Some(t) if s.now.saturating_sub(t) > max => {
                    return Some(format!(
                        "the sign-in was {} seconds ago, more than the {max} allowed",
                        s.now.saturating_sub(t)
                    ));
                }
                Some(_) => {}
            }
        }
        None
    }
}

/// The most approvers a quorum may demand; a larger number is a typo, not a policy.
pub const MAX_QUORUM: u32 = 32;

/// Reads a permit's sign-in requirement; on error returns the annotation
/// name and the message (to follow "policy `ID`").
pub(super) fn parse_requirement<'a>(
    get: impl Fn(&str) -> Option<&'a str>,
) -> Result<Requirement, (&'static str, String)> {
    let acr = match get("acr") {
        None => Vec::new(),
        Some(text) => {
            let values: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
            if values.is_empty() {
                return Err(("acr", "`@acr` names no class".to_owned()));
            }
            if let Some(bad) = values.iter().find(|v| {
                v.chars()
                    .any(|c| !c.is_ascii_graphic() || c == '"' || c == '\\')
            }) {
                return Err((
                    "acr",
                    format!(
                        "`@acr` class `{bad}` has a character a `WWW-Authenticate` header cannot carry"
                    ),
                ));
            }
            values
        }
    };
    let max_age = match get("max_age") {
        None => None,
        Some(t) => match t.trim().parse::<u64>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                return Err((
                    "max_age",
                    format!("`@max_age(\"{t}\")` should be a positive number of seconds"),
                ));
            }
        },
    };
    Ok(Requirement { acr, max_age })
}

/// Orders obligations from strictest to mildest: one that others approve
/// before the requester's own confirmation, a single use before a window
/// (and a short window before a long one), more approvers, less time to
/// decide, a required reason. `min_by_key` keeps the first of equals, and
/// reasons come sorted by policy id.
pub(super) fn strictness(o: &Obligation) -> (bool, bool, u64, std::cmp::Reverse<u32>, u64, bool) {
    (
        o.approvers == [Approver::Subject],
        o.grant == GrantMode::Window,
        o.window_seconds,
        std::cmp::Reverse(o.quorum),
        o.ttl_seconds,
        !o.reason_required,
    )
}

/// Reads an obligation from annotations; on error returns the annotation
/// name and the message.
pub(super) fn parse_obligation<'a>(
    get: impl Fn(&str) -> Option<&'a str>,
    default_ttl: u64,
) -> Result<Obligation, (&'static str, String)> {
    let approvers_raw = get("approvers").ok_or((
        "quorum",
        "approval annotations need `@approvers(\"group:NAME, group:NAME@tenant, user:SUBJECT, subject\")`".to_owned(),
    ))?;
    let approvers = approvers_raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|a| {
            a.parse::<Approver>()
                .map_err(|e| ("approvers", e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if approvers.is_empty() {
        return Err(("approvers", "`@approvers` names nobody".to_owned()));
    }
    let quorum = match get("quorum") {
        None => 1,
        Some(q) => match q.trim().parse::<u32>() {
            Ok(n) if (1..=MAX_QUORUM).contains(&n) => n,
            _ => {
                return Err((
                    "quorum",
                    format!("`@quorum(\"{q}\")` should be a whole number from 1 to {MAX_QUORUM}"),
                ));
            }
        },
    };
    if approvers == [Approver::Subject] && quorum != 1 {
        return Err((
            "quorum",
            "only the subject approves here, so the quorum can only be 1".to_owned(),
        ));
    }
    let ttl_seconds = match get("ttl") {
        None => default_ttl,
        Some(t) => match t.trim().parse::<u64>() {
            Ok(n) if n > 0 => n,
            _ => {
                return Err((
                    "ttl",
                    format!("`@ttl(\"{t}\")` should be a positive number of seconds"),
                ));
            }
        },
    };
    let (grant, window_seconds) = match get("grant").map(str::trim) {
        None | Some("once") => (GrantMode::Once, 0),
        Some(g) => match g.strip_prefix("window:").map(|s| s.trim().parse::<u64>()) {
            Some(Ok(n)) if n > 0 => (GrantMode::Window, n),
            _ => {
                return Err((
                    "grant",
                    format!("`@grant(\"{g}\")` should be `once` or `window:SECONDS`"),
                ));
            }
        },
    };
    let reason_required = match get("reason").map(str::trim) {
        None | Some("optional") => false,
        Some("required") => true,
        Some(r) => {
            return Err((
                "reason",
                format!("`@reason(\"{r}\")` should be `required` or `optional`"),
            ));
        }
    };
    Ok(Obligation {
        approvers,
        quorum,
        ttl_seconds,
        grant,
        window_seconds,
        reason_required,
        message: get("message").unwrap_or("").to_owned(),
    })
}
