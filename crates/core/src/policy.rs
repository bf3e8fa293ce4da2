//! Cedar policies with approval obligations carried as annotations.
//!
//! A satisfied `forbid` denies. A satisfied `permit` without `@approvers`
//! allows. When every satisfied permit carries `@approvers`, the verdict is
//! approval-required with the strictest of their obligations: others'
//! approval over the requester's own confirmation, `once` over `window`
//! (then the shorter window), the larger quorum, the shorter TTL, a
//! required reason over an optional one, then the first by policy id.

use std::collections::BTreeMap;
use std::str::FromStr;

use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Effect, Entities, EntityId, EntityTypeName,
    EntityUid, PolicyId, PolicySet, Request, Schema, ValidationMode, Validator,
};
use miette::Diagnostic;
use serde_json::{Map, Value, json};

use greenlight_types::{Approver, GrantMode, Obligation, Principal};

/// The annotations Greenlight reads from a permit.
pub const OBLIGATION_ANNOTATIONS: &[&str] =
    &["approvers", "quorum", "ttl", "grant", "reason", "message"];

/// The most approvers a quorum may demand; a larger number is a typo, not a policy.
pub const MAX_QUORUM: u32 = 32;

/// A problem found in `policy.cedar` or `schema.cedarschema`, located by byte offset.
#[derive(Clone, Debug)]
pub struct SourceProblem {
    /// `true` for the schema file, `false` for the policy file.
    pub in_schema: bool,
    /// `true` when a policy parses but violates the schema.
    pub violates_schema: bool,
    /// Byte offset into the file, where known.
    pub offset: Option<usize>,
    /// What is wrong.
    pub message: String,
}

/// The loaded policies.
#[derive(Clone, Debug)]
pub struct Policies {
    set: PolicySet,
    obligations: BTreeMap<String, Obligation>,
    schema: Option<Schema>,
}

/// Cedar's answer, before digests and tokens are considered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A permit without obligations matched and no forbid did.
    Allow(Vec<String>),
    /// A forbid matched.
    Forbidden(Vec<String>),
    /// No permit matched.
    NoPermit,
    /// Only permits with obligations matched.
    ApprovalRequired(Obligation, Vec<String>),
    /// The request does not fit the schema or Cedar's value rules.
    Invalid(String),
}

fn offset_of(diag: &dyn Diagnostic) -> Option<usize> {
    diag.labels()
        .and_then(|mut labels| labels.next())
        .map(|l| l.offset())
}

fn diag_message(diag: &(impl Diagnostic + ?Sized)) -> String {
    let mut msg = diag.to_string();
    if let Some(help) = diag.help() {
        msg.push_str(&format!(" (help: {help})"));
    }
    msg
}

/// The byte offset of `@id("id")` in the source, or of the first occurrence
/// of `needle` after it, to locate annotation problems.
fn locate(src: &str, id: &str, needle: &str) -> Option<usize> {
    let anchor = src.find(&format!("@id(\"{id}\")"))?;
    Some(src[anchor..].find(needle).map_or(anchor, |o| anchor + o))
}

impl Policies {
    /// Parses policies (and the schema, when given), validates them against
    /// the schema, gives each policy its `@id`, and reads every obligation.
    pub fn load(
        policy_src: &str,
        schema_src: Option<&str>,
        default_ttl: u64,
    ) -> Result<Self, Vec<SourceProblem>> {
        let mut problems = Vec::new();
        let schema = match schema_src {
            None => None,
            Some(src) => match Schema::from_cedarschema_str(src) {
                Ok((schema, _warnings)) => Some(schema),
                Err(e) => {
                    problems.push(SourceProblem {
                        in_schema: true,
                        violates_schema: false,
                        offset: offset_of(&e),
                        message: diag_message(&e),
                    });
                    None
                }
            },
        };
        let parsed = match PolicySet::from_str(policy_src) {
            Ok(set) => set,
            Err(errors) => {
                for e in errors.iter() {
                    problems.push(SourceProblem {
                        in_schema: false,
                        violates_schema: false,
                        offset: offset_of(e),
                        message: diag_message(e),
                    });
                }
                return Err(problems);
            }
        };
        let mut set = PolicySet::new();
        let mut obligations = BTreeMap::new();
        let mut templates = false;
        for policy in parsed.policies() {
            let id = policy
                .annotation("id")
                .map(str::to_owned)
                .unwrap_or_else(|| policy.id().to_string());
            let renamed = policy.new_id(PolicyId::new(&id));
            if set.add(renamed).is_err() {
                problems.push(SourceProblem {
                    in_schema: false,
                    violates_schema: false,
                    offset: locate(policy_src, &id, "@id"),
                    message: format!("policy id `{id}` is used twice"),
                });
                continue;
            }
            let Some(first) = OBLIGATION_ANNOTATIONS
                .iter()
                .find(|a| policy.annotation(a).is_some())
            else {
                continue;
            };
            let loc = |needle: &str| locate(policy_src, &id, needle);
            if policy.effect() == Effect::Forbid {
                problems.push(SourceProblem {
                    in_schema: false,
                    violates_schema: false,
                    offset: loc(&format!("@{first}")),
                    message: format!(
                        "policy `{id}` is a forbid: approval annotations only belong on permits"
                    ),
                });
                continue;
            }
            match parse_obligation(|k| policy.annotation(k), default_ttl) {
                Ok(o) => {
                    obligations.insert(id.clone(), o);
                }
                Err((annotation, message)) => problems.push(SourceProblem {
                    in_schema: false,
                    violates_schema: false,
                    offset: loc(&format!("@{annotation}")),
                    message: format!("policy `{id}`: {message}"),
                }),
            }
        }
        for _ in parsed.templates() {
            templates = true;
        }
        if templates {
            problems.push(SourceProblem {
                in_schema: false,
                violates_schema: false,
                offset: None,
                message: "policy templates (`?principal`, `?resource`) are not supported"
                    .to_owned(),
            });
        }
        if let Some(schema) = &schema {
            let result = Validator::new(schema.clone()).validate(&set, ValidationMode::Strict);
            for e in result.validation_errors() {
                problems.push(SourceProblem {
                    in_schema: false,
                    violates_schema: true,
                    offset: offset_of(e),
                    message: diag_message(e),
                });
            }
        }
        if problems.is_empty() {
            Ok(Self {
                set,
                obligations,
                schema,
            })
        } else {
            Err(problems)
        }
    }

    /// Whether a schema was loaded.
    pub fn has_schema(&self) -> bool {
        self.schema.is_some()
    }

    /// Evaluates one request. `home` is the bundle's first issuer, whose
    /// subjects are Cedar entities by their `sub` alone ([`entity_id`]).
    #[expect(
        clippy::too_many_arguments,
        reason = "one Cedar request's parts, passed as the engine holds them"
    )]
    pub fn decide(
        &self,
        principal: &Principal,
        home: &str,
        action: &str,
        resource_type: &str,
        resource_id: &str,
        resource_attrs: Map<String, Value>,
        context: Map<String, Value>,
    ) -> Outcome {
        match self.try_decide(
            principal,
            &entity_id(principal, home),
            action,
            resource_type,
            resource_id,
            resource_attrs,
            context,
        ) {
            Ok(o) => o,
            Err(e) => Outcome::Invalid(e),
        }
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "one Cedar request's parts, passed as the engine holds them"
    )]
    fn try_decide(
        &self,
        principal: &Principal,
        principal_id: &str,
        action: &str,
        resource_type: &str,
        resource_id: &str,
        resource_attrs: Map<String, Value>,
        context: Map<String, Value>,
    ) -> Result<Outcome, String> {
        let principal_uid = uid(&principal.entity_type, principal_id)?;
        let action_uid = uid("Action", action)?;
        let resource_uid = uid(resource_type, resource_id)?;
        let entities = json!([
            {
                "uid": { "type": principal.entity_type, "id": principal_id },
                "attrs": {
                    "sub": principal.subject,
                    "client_id": principal.client_id,
                    "scopes": principal.scopes,
                    "groups": principal.groups,
                    "roles": principal.roles,
                    "tenant": principal.tenant,
                    "issuer": principal.issuer,
                },
                "parents": []
            },
            {
                "uid": { "type": resource_type, "id": resource_id },
                "attrs": resource_attrs,
                "parents": []
            }
        ]);
        let schema = self.schema.as_ref();
        let entities = Entities::from_json_value(entities, schema)
            .map_err(|e| format!("the request's entities do not fit: {}", diag_message(&e)))?;
        let context =
            Context::from_json_value(Value::Object(context), schema.map(|s| (s, &action_uid)))
                .map_err(|e| format!("the request's context does not fit: {}", diag_message(&e)))?;
        let request = Request::new(principal_uid, action_uid, resource_uid, context, schema)
            .map_err(|e| format!("the request does not fit the schema: {}", diag_message(&e)))?;
        let response = Authorizer::new().is_authorized(&request, &self.set, &entities);
        let mut reasons: Vec<String> = response
            .diagnostics()
            .reason()
            .map(|id| id.to_string())
            .collect();
        reasons.sort();
        Ok(match response.decision() {
            CedarDecision::Deny if reasons.is_empty() => Outcome::NoPermit,
            CedarDecision::Deny => Outcome::Forbidden(reasons),
            CedarDecision::Allow => {
                let plain: Vec<String> = reasons
                    .iter()
                    .filter(|id| !self.obligations.contains_key(*id))
                    .cloned()
                    .collect();
                if plain.is_empty() {
                    let strictest = reasons
                        .iter()
                        .filter_map(|id| self.obligations.get(id))
                        .min_by_key(|o| strictness(o))
                        .cloned()
                        .ok_or("an allow without determining policies")?;
                    Outcome::ApprovalRequired(strictest, reasons)
                } else {
                    Outcome::Allow(plain)
                }
            }
        })
    }
}

/// Orders obligations from strictest to mildest: one that others approve
/// before the requester's own confirmation, a single use before a window
/// (and a short window before a long one), more approvers, less time to
/// decide, a required reason. `min_by_key` keeps the first of equals, and
/// reasons come sorted by policy id.
fn strictness(o: &Obligation) -> (bool, bool, u64, std::cmp::Reverse<u32>, u64, bool) {
    (
        o.approvers == [Approver::Subject],
        o.grant == GrantMode::Window,
        o.window_seconds,
        std::cmp::Reverse(o.quorum),
        o.ttl_seconds,
        !o.reason_required,
    )
}

/// The principal's Cedar entity id: its `sub` for a subject of `home`,
/// the bundle's first issuer (whose subjects `user:` approvers name too),
/// and `ISSUER#sub` for any other issuer's, so that
/// `principal == User::"alice"` never matches another provider's `alice`.
pub fn entity_id(principal: &Principal, home: &str) -> String {
    if principal.issuer == home {
        principal.subject.clone()
    } else {
        format!("{}#{}", principal.issuer, principal.subject)
    }
}

fn uid(entity_type: &str, id: &str) -> Result<EntityUid, String> {
    let name = EntityTypeName::from_str(entity_type)
        .map_err(|_| format!("`{entity_type}` is not a Cedar entity type name"))?;
    Ok(EntityUid::from_type_name_and_id(name, EntityId::new(id)))
}

/// Checks that a name is a valid Cedar entity type.
pub fn valid_entity_type(name: &str) -> bool {
    EntityTypeName::from_str(name).is_ok()
}

/// Reads an obligation from annotations; on error returns the annotation
/// name and the message.
fn parse_obligation<'a>(
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
