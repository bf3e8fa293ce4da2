//! Cedar policies with approval obligations carried as annotations.
//!
//! A satisfied `forbid` denies. A satisfied `permit` without `@approvers`
//! allows. When every satisfied permit carries `@approvers`, the verdict is
//! approval-required with the strictest of their obligations: others'
//! approval over the requester's own confirmation, `once` over `window`
//! (then the shorter window), the larger quorum, the shorter TTL, a
//! required reason over an optional one, then the first by policy id.
//!
//! A permit may also require a sign-in (`@acr("…")`: one of these
//! authentication context classes; `@max_age("SECONDS")`: this recent). A
//! satisfied permit whose requirement the token does not meet counts only
//! when no other satisfied permit does: then the verdict is step-up
//! required (RFC 9470), naming that permit's requirement (of a permit
//! without `@approvers` before one with, then the first by policy id).
//! An action token is exempt from the requirement of a permit with
//! `@approvers`: it was met when the approval was asked for.
//!
//! A `forbid` that cannot be evaluated (say, it reads an attribute the
//! token does not give, in a bundle without a schema) counts as
//! satisfied: an error never lifts a prohibition.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use cedar_policy::{
    AuthorizationError, Authorizer, Context, Decision as CedarDecision, Effect, Entities, Entity,
    EntityId, EntityTypeName, EntityUid, Policy, PolicyId, PolicySet, Request, Schema,
    ValidationMode, Validator,
};
use miette::Diagnostic;
use serde_json::{Map, Value, json};

use crate::claims::{self, Mapping};
use greenlight_types::{Obligation, Principal, StepUp};

mod annotations;
pub mod entities;
mod prebuilt;
mod slices;
pub mod trace;
mod values;

/// How a request's values reach Cedar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reader {
    /// Built directly where they are plain JSON that fits ([`values`]).
    Direct,
    /// Read by Cedar's JSON reader (debug builds check `Direct` by it).
    #[cfg_attr(not(debug_assertions), allow(dead_code))]
    Json,
}

pub use annotations::{
    MAX_QUORUM, OBLIGATION_ANNOTATIONS, Requirement, STEP_UP_ANNOTATIONS, SignIn,
};
use annotations::{parse_obligation, parse_requirement, strictness};
use entities::{EntityData, EntityJson, Uid};
use prebuilt::Prebuilt;
use slices::Slices;

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

/// One request's parts, as the engine holds them.
#[derive(Clone, Debug)]
pub struct Query<'a> {
    /// Who asks.
    pub principal: &'a Principal,
    /// The bundle's first issuer, whose subjects are Cedar entities by
    /// their `sub` alone ([`entity_id`]).
    pub home: &'a str,
    /// The action's name.
    pub action: &'a str,
    /// The resource's entity type.
    pub resource_type: &'a str,
    /// The resource's id.
    pub resource_id: &'a str,
    /// The resource's attributes from the request.
    pub resource_attrs: Map<String, Value>,
    /// The request's context.
    pub context: Map<String, Value>,
    /// The host's entities for this request.
    pub entities: &'a [EntityJson],
    /// Where the principal's entity is kept between requests with the
    /// same verified token, if anywhere.
    pub principal_entity: Option<&'a PrincipalEntity>,
}

/// The principal's Cedar entity, built and held to the schema once for a
/// verified token (the token cache's copies share it), by the policies
/// that built it: another bundle's policies build their own.
#[derive(Clone, Debug, Default)]
pub struct PrincipalEntity(Arc<OnceLock<(u64, Entity)>>);

/// Tells one set of loaded policies (with its data) from another, for
/// [`PrincipalEntity`].
static GENERATION: AtomicU64 = AtomicU64::new(1);

/// The loaded policies.
#[derive(Clone, Debug)]
pub struct Policies {
    set: PolicySet,
    obligations: BTreeMap<String, Obligation>,
    requirements: BTreeMap<String, Requirement>,
    schema: Option<Schema>,
    data: EntityData,
    authorizer: Authorizer,
    /// Which policies and data these are ([`PrincipalEntity`]).
    generation: u64,
    /// The entity type names the schema and the policies name, parsed.
    type_names: HashMap<String, EntityTypeName>,
    /// The policies each action's requests are evaluated against.
    slices: Slices,
    /// Whether `slices` holds them (else every request is evaluated
    /// against the whole set).
    sliced: bool,
    /// What the schema lets every request skip, when there is one.
    prebuilt: Option<Prebuilt>,
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
    /// Only permits whose sign-in requirement the token does not meet
    /// matched.
    StepUpRequired(StepUp, Vec<String>),
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
        let mut requirements = BTreeMap::new();
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
            // A problem with one of this policy's annotations, located at it.
            let annotation_problem = |annotation: &str, message: String| SourceProblem {
                in_schema: false,
                violates_schema: false,
                offset: locate(policy_src, &id, &format!("@{annotation}")),
                message,
            };
            if let Some(first) = STEP_UP_ANNOTATIONS
                .iter()
                .find(|a| policy.annotation(a).is_some())
            {
                if policy.effect() == Effect::Forbid {
                    problems.push(annotation_problem(
                        first,
                        format!(
                            "policy `{id}` is a forbid: sign-in requirements only belong on permits"
                        ),
                    ));
                } else {
                    match parse_requirement(|k| policy.annotation(k)) {
                        Ok(r) => {
                            requirements.insert(id.clone(), r);
                        }
                        Err((annotation, message)) => problems.push(annotation_problem(
                            annotation,
                            format!("policy `{id}`: {message}"),
                        )),
                    }
                }
            }
            let Some(first) = OBLIGATION_ANNOTATIONS
                .iter()
                .find(|a| policy.annotation(a).is_some())
            else {
                continue;
            };
            if policy.effect() == Effect::Forbid {
                problems.push(annotation_problem(
                    first,
                    format!(
                        "policy `{id}` is a forbid: approval annotations only belong on permits"
                    ),
                ));
                continue;
            }
            match parse_obligation(|k| policy.annotation(k), default_ttl) {
                Ok(o) => {
                    obligations.insert(id.clone(), o);
                }
                Err((annotation, message)) => problems.push(annotation_problem(
                    annotation,
                    format!("policy `{id}`: {message}"),
                )),
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
            let slices = Slices::new(&set, schema.as_ref());
            let mut type_names: HashMap<String, EntityTypeName> = set
                .policies()
                .flat_map(Policy::entity_literals)
                .map(|u| u.type_name().clone())
                .chain(schema.iter().flat_map(|s| s.entity_types().cloned()))
                .map(|t| (t.to_string(), t))
                .collect();
            if let Ok(action) = EntityTypeName::from_str("Action") {
                type_names.insert("Action".to_owned(), action);
            }
            let prebuilt = schema
                .as_ref()
                .zip(schema_src)
                .and_then(|(schema, src)| Prebuilt::new(schema, src));
            Ok(Self {
                set,
                obligations,
                requirements,
                schema,
                data: EntityData::default(),
                authorizer: Authorizer::new(),
                generation: GENERATION.fetch_add(1, Ordering::Relaxed),
                type_names,
                sliced: slices.is_some(),
                slices: slices.unwrap_or_default(),
                prebuilt,
            })
        } else {
            Err(problems)
        }
    }

    /// Checks the mapped principal attributes against the schema, when
    /// there is one: the principal entity with every attribute must fit,
    /// and one may lack each attribute a token may not give. Returns each
    /// problem with the attribute it is about (empty for all of them).
    pub fn check_principal(
        &self,
        entity_type: &str,
        mappings: &[Mapping],
    ) -> Vec<(String, String)> {
        let Some(schema) = &self.schema else {
            return Vec::new();
        };
        if mappings.is_empty() {
            return Vec::new();
        }
        let fits = |p: &Principal| {
            let entity = json!([{
                "uid": { "type": entity_type, "id": "check" },
                "attrs": principal_attrs(p),
                "parents": []
            }]);
            Entities::from_json_value(entity, Some(schema))
                .err()
                .map(|e| {
                    // Cedar says what does not fit in the error's causes.
                    let mut message = diag_message(&e);
                    let mut cause = std::error::Error::source(&e);
                    while let Some(c) = cause {
                        message.push_str(&format!(": {c}"));
                        cause = c.source();
                    }
                    message
                })
        };
        let full = Principal {
            entity_type: entity_type.to_owned(),
            subject: "check".to_owned(),
            issuer: "check".to_owned(),
            attributes: mappings
                .iter()
                .map(|m| (m.name.clone(), m.sample()))
                .collect(),
            ..Principal::default()
        };
        if let Some(e) = fits(&full) {
            return vec![(
                String::new(),
                format!("the principal with its mapped attributes does not fit the schema: {e}"),
            )];
        }
        mappings
            .iter()
            .filter(|m| m.may_be_absent())
            .filter_map(|m| {
                let mut lacking = full.clone();
                lacking.attributes.remove(&m.name);
                fits(&lacking).map(|_| {
                    (
                        m.name.clone(),
                        format!(
                            "attribute `{}` is absent when a token lacks `{}` (it is not required and has no default), but the schema requires it: declare `{}?: {}`, or make it required, or give a default",
                            m.name, m.shown, m.name, m.kind.name()
                        ),
                    )
                })
            })
            .collect()
    }

    /// Whether a schema was loaded.
    pub fn has_schema(&self) -> bool {
        self.schema.is_some()
    }

    /// The schema, when one was loaded.
    pub fn schema(&self) -> Option<&Schema> {
        self.schema.as_ref()
    }

    /// Gives the policies the bundle's entity data.
    pub fn set_data(&mut self, mut data: EntityData) {
        let mut named: Vec<Uid> = self
            .set
            .policies()
            .flat_map(Policy::entity_literals)
            .filter(|u| !entities::is_action(&u.type_name().to_string()))
            .map(|u| Uid {
                kind: u.type_name().to_string(),
                id: u.id().unescaped().to_owned(),
            })
            .collect();
        named.sort();
        named.dedup();
        data.name(named);
        self.data = data;
        self.generation = GENERATION.fetch_add(1, Ordering::Relaxed);
    }

    /// The bundle's entity data.
    pub fn data(&self) -> &EntityData {
        &self.data
    }

    /// Evaluates one request. Debug builds evaluate it again with every
    /// value read by Cedar's JSON reader, and panic if the two differ: the
    /// direct way in ([`values`]) must decide exactly as the reader does.
    pub fn decide(&self, q: Query<'_>, sign_in: &SignIn<'_>) -> Outcome {
        #[cfg(debug_assertions)]
        let check = q.clone();
        let outcome = self.decide_by(q, sign_in, Reader::Direct);
        #[cfg(debug_assertions)]
        {
            let read = self.decide_by(check, sign_in, Reader::Json);
            assert_eq!(
                outcome, read,
                "a request built directly decides unlike Cedar's JSON reader"
            );
        }
        outcome
    }

    fn decide_by(&self, q: Query<'_>, sign_in: &SignIn<'_>, reader: Reader) -> Outcome {
        match self.try_decide(q, sign_in, reader) {
            Ok(o) => o,
            Err(e) => Outcome::Invalid(e),
        }
    }

    /// The request and entities Cedar sees for `q`: built directly where
    /// the request is plain JSON that fits ([`values`]), else read by
    /// Cedar's JSON reader.
    fn cedar_request(&self, q: Query<'_>) -> Result<(Request, Entities), String> {
        self.cedar_request_by(q, Reader::Direct)
    }

    fn cedar_request_by(
        &self,
        q: Query<'_>,
        reader: Reader,
    ) -> Result<(Request, Entities), String> {
        let principal = q.principal;
        let principal_id = entity_id(principal, q.home);
        let principal_uid = self.uid(&principal.entity_type, &principal_id)?;
        let action_uid = self.uid("Action", q.action)?;
        let resource_uid = self.uid(q.resource_type, q.resource_id)?;
        let token = || match principal_attrs(principal) {
            Value::Object(attrs) => attrs,
            _ => Map::new(),
        };
        let schema = self.schema.as_ref();
        let merged = self.data.merge(
            Uid {
                kind: principal.entity_type.clone(),
                id: principal_id,
            },
            (
                Uid {
                    kind: q.resource_type.to_owned(),
                    id: q.resource_id.to_owned(),
                },
                q.resource_attrs,
            ),
            q.entities,
        )?;
        if reader == Reader::Direct
            && let Some(entities) = self.data.build(schema, self.prebuilt.as_ref(), &merged, |build| {
                self.principal_entity(q.principal_entity, || build(token()))
            })
            // Cedar's reader reads the context as one value: an object
            // with a `__` member may be an escape there, not a record.
            && !q.context.keys().any(|k| k.starts_with("__"))
            && let Some(context) = values::record(&q.context)
            && let Ok(context) = Context::from_pairs(context)
            && let Ok(request) = Request::new(
                principal_uid.clone(),
                action_uid.clone(),
                resource_uid.clone(),
                context,
                schema,
            )
        {
            return Ok((request, entities));
        }
        let entities = self.data.read_json(schema, merged, token())?;
        let context =
            Context::from_json_value(Value::Object(q.context), schema.map(|s| (s, &action_uid)))
                .map_err(|e| format!("the request's context does not fit: {}", diag_message(&e)))?;
        let request = Request::new(principal_uid, action_uid, resource_uid, context, schema)
            .map_err(|e| format!("the request does not fit the schema: {}", diag_message(&e)))?;
        Ok((request, entities))
    }

    /// The uid of an entity of type `kind`, the type's name parsed once
    /// where the schema or the policies name it.
    fn uid(&self, kind: &str, id: &str) -> Result<EntityUid, String> {
        match self.type_names.get(kind) {
            Some(name) => Ok(EntityUid::from_type_name_and_id(
                name.clone(),
                EntityId::new(id),
            )),
            None => uid(kind, id),
        }
    }

    /// The principal's entity from `cell` when these policies built it,
    /// else built (and held to the schema) now and kept there.
    fn principal_entity(
        &self,
        cell: Option<&PrincipalEntity>,
        build: impl FnOnce() -> Option<Entity>,
    ) -> Option<Entity> {
        if let Some((generation, entity)) = cell.and_then(|c| c.0.get())
            && *generation == self.generation
        {
            return Some(entity.clone());
        }
        let entity = build()?;
        Entities::from_entities([entity.clone()], self.schema.as_ref()).ok()?;
        if let Some(cell) = cell {
            // A cell another bundle's policies filled stays theirs; this
            // request builds its own.
            let _ = cell.0.set((self.generation, entity.clone()));
        }
        Some(entity)
    }

    fn try_decide(
        &self,
        q: Query<'_>,
        sign_in: &SignIn<'_>,
        reader: Reader,
    ) -> Result<Outcome, String> {
        let (request, entities) = self.cedar_request_by(q, reader)?;
        let policies = match (reader, self.sliced, request.action()) {
            (Reader::Direct, true, Some(action)) => self
                .slices
                .by_action
                .get(action)
                .unwrap_or(&self.slices.unnamed),
            _ => &self.set,
        };
        let response = self.authorizer.is_authorized(&request, policies, &entities);
        let mut reasons: Vec<String> = response
            .diagnostics()
            .reason()
            .map(|id| id.to_string())
            .collect();
        reasons.sort();
        // Cedar skips a policy it cannot evaluate; for a forbid that would
        // fail open.
        let mut failed: Vec<String> = response
            .diagnostics()
            .errors()
            .map(|e| {
                let AuthorizationError::PolicyEvaluationError(e) = e;
                e.policy_id()
            })
            .filter(|id| {
                self.set
                    .policy(id)
                    .is_some_and(|p| p.effect() == Effect::Forbid)
            })
            .map(ToString::to_string)
            .collect();
        if !failed.is_empty() {
            if response.decision() == CedarDecision::Deny {
                failed.extend(reasons);
            }
            failed.sort();
            failed.dedup();
            return Ok(Outcome::Forbidden(failed));
        }
        Ok(match response.decision() {
            CedarDecision::Deny if reasons.is_empty() => Outcome::NoPermit,
            CedarDecision::Deny => Outcome::Forbidden(reasons),
            CedarDecision::Allow => {
                // The permits the sign-in falls short of, with what it lacks;
                // the others count.
                let mut short = Vec::new();
                let mut counting = Vec::with_capacity(reasons.len());
                for id in reasons {
                    let lacks = self.requirements.get(&id).and_then(|r| {
                        // An action token's approval was asked for through
                        // a permit with approvers, whose requirement was
                        // met then; a plain permit's still applies.
                        if sign_in.exempt && self.obligations.contains_key(&id) {
                            return None;
                        }
                        r.shortfall(sign_in).map(|why| (r, why))
                    });
                    match lacks {
                        Some((r, why)) => short.push((id, r, why)),
                        None => counting.push(id),
                    }
                }
                let reasons = counting;
                if reasons.is_empty() {
                    // Only permits the sign-in falls short of matched: ask
                    // for the one that would allow outright, if any (ids
                    // are sorted, so the first of equals is the smallest).
                    let (id, r, why) = short
                        .into_iter()
                        .min_by_key(|(id, _, _)| self.obligations.contains_key(id))
                        .ok_or("a step-up without a requirement")?;
                    return Ok(Outcome::StepUpRequired(
                        StepUp {
                            acr_values: r.acr.clone(),
                            max_age: r.max_age,
                            message: why,
                        },
                        vec![id],
                    ));
                }
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

/// The principal's attributes in Cedar's JSON entity format: the
/// built-in ones, then the mapped ones.
pub(crate) fn principal_attrs(principal: &Principal) -> Value {
    let mut attrs = json!({
        "sub": principal.subject,
        "client_id": principal.client_id,
        "scopes": principal.scopes,
        "groups": principal.groups,
        "roles": principal.roles,
        "tenant": principal.tenant,
        "issuer": principal.issuer,
    });
    for (name, value) in &principal.attributes {
        attrs[name.as_str()] = claims::to_cedar(value);
    }
    attrs
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
