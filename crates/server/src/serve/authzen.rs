//! OpenID AuthZEN 1.0 Access Evaluation API: `POST /access/v1/evaluation`
//! and `POST /access/v1/evaluations`, and the PDP metadata at
//! `GET /.well-known/authzen-configuration`.
//!
//! The subject is the bearer token the PEP forwards:
//! `{"type": "bearer", "id": "<access or action token>"}`. The token is the
//! credential: the PDP verifies it, so a PEP learns nothing about a subject
//! whose token it does not hold.
//!
//! A trusted PEP may instead vouch for a subject by id:
//! `{"type": "User", "id": "alice", "properties": {"scopes": [...],
//! "groups": [...], "roles": [...], "tenant": "..."}}` (the type is the
//! bundle's principal entity type). It authenticates with its own access
//! token from one of the bundle's issuers in `Authorization: Bearer`: a
//! token it holds for itself (`sub` equal to `client_id`, as the
//! client-credentials grant gives), whose `client_id` is listed in
//! `[authzen] trusted_clients` of the server's settings. Anyone else naming
//! a subject this way is refused, including a user whose token was issued
//! to the gateway's client.
//!
//! An approval-required answer is `decision: false` with the challenge in
//! `context`, made requestable as AuthZEN ARAP says (`reason`,
//! `evaluation_id`, `evaluated_at`, `access_request`); an evaluation that
//! carries `context.approval` is a re-evaluation after approval
//! (`super::arap::reevaluate`).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::HeaderMap;
use greenlight_types::{AccessRequest, Decision, Principal, Verdict};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::auth::authenticate;
use super::enforce::act;
use super::live::Version;
use super::{ApiError, AppState};

/// The most evaluations one batch may carry.
const MAX_BATCH: usize = 64;

/// An AuthZEN entity: subject or resource.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entity {
    #[serde(rename = "type")]
    kind: Option<String>,
    id: Option<String>,
    properties: Option<Map<String, Value>>,
}

/// An AuthZEN action.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionSpec {
    name: Option<String>,
    properties: Option<Map<String, Value>>,
}

/// One evaluation request (every member optional in a batch item, where it
/// overrides the batch's defaults).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evaluation {
    subject: Option<Entity>,
    action: Option<ActionSpec>,
    resource: Option<Entity>,
    context: Option<Map<String, Value>>,
}

impl Evaluation {
    /// An evaluation of these members.
    pub(super) fn new(
        subject: Option<Entity>,
        action: Option<ActionSpec>,
        resource: Option<Entity>,
        context: Option<Map<String, Value>>,
    ) -> Self {
        Self {
            subject,
            action,
            resource,
            context,
        }
    }

    /// The names of the context members, which the decision reads as the
    /// action's parameters.
    fn members(&self) -> Vec<String> {
        self.context
            .as_ref()
            .map(|c| c.keys().cloned().collect())
            .unwrap_or_default()
    }
}

/// The batch request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evaluations {
    subject: Option<Entity>,
    action: Option<ActionSpec>,
    resource: Option<Entity>,
    context: Option<Map<String, Value>>,
    evaluations: Option<Vec<Evaluation>>,
    options: Option<Map<String, Value>>,
}

/// Who the subject is: a token to verify, or a subject a trusted PEP
/// vouches for.
pub(super) enum Subject {
    Token(String),
    Vouched(Principal),
}

/// The PEP calling, authenticated on first need and checked against
/// `[authzen] trusted_clients`.
pub(super) struct Pep<'a> {
    headers: &'a HeaderMap,
    trusted: Option<Result<Principal, ApiError>>,
}

impl<'a> Pep<'a> {
    /// The PEP calling with `headers`, not yet authenticated.
    pub(super) fn new(headers: &'a HeaderMap) -> Self {
        Self {
            headers,
            trusted: None,
        }
    }

    /// The PEP, authenticated and trusted to vouch for subjects.
    pub(super) async fn trusted(&mut self, st: &AppState) -> Result<&Principal, ApiError> {
        if self.trusted.is_none() {
            self.trusted = Some(Self::check(st, self.headers).await);
        }
        match self.trusted.as_ref() {
            Some(Ok(p)) => Ok(p),
            Some(Err(e)) => Err(ApiError::new(e.status, e.code, e.description.clone())),
            None => Err(ApiError::invalid_token("no bearer token was presented")),
        }
    }

    /// Authenticates the PEP and checks it is trusted.
    async fn check(st: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
        let pep = authenticate(st, headers).await?.principal;
        trusted_pep(st, &pep)?;
        Ok(pep)
    }
}

/// Whether `pep` is a PEP trusted to vouch for subjects: a client listed in
/// `[authzen] trusted_clients`, speaking for itself; why not otherwise.
pub(super) fn trusted_pep<'s>(
    st: &'s AppState,
    pep: &Principal,
) -> Result<&'s crate::serve::settings::TrustedClient, ApiError> {
    let entry = st
        .settings
        .authzen
        .trusted_clients
        .iter()
        .find(|t| t.issuer == pep.issuer && t.client_id == pep.client_id);
    let Some(entry) = entry else {
        return Err(ApiError::forbidden(format!(
            "client `{}` of `{}` is not trusted to vouch for subjects; forward the subject's token as {{\"type\": \"bearer\", \"id\": TOKEN}}",
            pep.client_id, pep.issuer
        )));
    };
    // A user's token issued to the gateway's client is not the gateway
    // speaking for itself.
    let own = entry.subject.as_deref().unwrap_or(&entry.client_id);
    if pep.subject != own {
        Err(ApiError::forbidden(format!(
            "only client `{}`'s own token (subject `{own}`, as its client-credentials grant gives) may vouch for subjects, not `{}`'s",
            pep.client_id, pep.subject
        )))
    } else {
        Ok(entry)
    }
}

/// A vouched subject's properties: the principal attributes policies see.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Vouched {
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    tenant: String,
    /// Mapped attributes in their typed form (`{"department": {"string":
    /// "finance"}}`); the engine checks them against the bundle's mapping.
    #[serde(default)]
    attributes: std::collections::BTreeMap<String, greenlight_types::AttributeValue>,
}

pub(super) async fn subject_of(
    st: &AppState,
    v: &Version,
    pep: &mut Pep<'_>,
    e: &Evaluation,
) -> Result<Subject, ApiError> {
    let subject = e
        .subject
        .as_ref()
        .ok_or_else(|| ApiError::invalid_request("`subject` is required"))?;
    let id = subject
        .id
        .clone()
        .ok_or_else(|| ApiError::invalid_request("`subject.id` is required"))?;
    let entity_type = &v.info().claims.entity_type;
    match subject.kind.as_deref() {
        Some("bearer") => Ok(Subject::Token(id)),
        Some(t) if t == entity_type => {
            let by = pep.trusted(st).await?;
            let props: Vouched = serde_json::from_value(Value::Object(
                subject.properties.clone().unwrap_or_default(),
            ))
            .map_err(|err| {
                ApiError::invalid_request(format!("`subject.properties` do not fit: {err}"))
            })?;
            Ok(Subject::Vouched(Principal {
                entity_type: entity_type.clone(),
                subject: id,
                client_id: by.client_id.clone(),
                scopes: props.scopes,
                groups: props.groups,
                roles: props.roles,
                tenant: props.tenant,
                issuer: by.issuer.clone(),
                attributes: props.attributes,
            }))
        }
        _ => Err(ApiError::invalid_request(format!(
            "`subject.type` must be `bearer`, with the token as `subject.id`, or `{entity_type}` from a trusted PEP"
        ))),
    }
}

pub(super) async fn decide_one(
    st: &AppState,
    v: &Version,
    subject: &Subject,
    e: &Evaluation,
) -> Result<Decision, String> {
    let action = e
        .action
        .as_ref()
        .and_then(|a| a.name.clone())
        .ok_or("`action.name` is required")?;
    if e.action
        .as_ref()
        .is_some_and(|a| a.properties.as_ref().is_some_and(|p| !p.is_empty()))
    {
        return Err("`action.properties` are not used; put parameters in `context`".to_owned());
    }
    let resource = e.resource.as_ref().ok_or("`resource` is required")?;
    let mut request = AccessRequest {
        token: String::new(),
        action,
        resource_type: resource.kind.clone().ok_or("`resource.type` is required")?,
        resource_id: resource.id.clone().ok_or("`resource.id` is required")?,
        resource_properties: resource
            .properties
            .as_ref()
            .map(|p| Value::Object(p.clone()).to_string()),
        context: e
            .context
            .as_ref()
            .map(|c| Value::Object(c.clone()).to_string()),
        // A PEP calling over HTTP is not trusted to state facts: entities
        // come from the bundle's data only.
        entities: None,
    };
    Ok(match subject {
        Subject::Token(t) => {
            request.token = t.clone();
            st.decide(v, |p, now| p.evaluate(&request, now)).await
        }
        Subject::Vouched(p) => v.policy.evaluate_as(p, &request, st.clock.now()),
    })
}

/// AuthZEN's answer shape for one decision. An approval-required one is
/// requestable (ARAP) when it can be asked for: `members` are the context
/// members the decision read, which its binding covers.
pub(super) fn answer(
    st: &AppState,
    v: &Version,
    d: &Decision,
    members: Option<Vec<String>>,
) -> Value {
    let full = st.decision_json(v, d);
    let component_hash = v.component_hash();
    match &d.verdict {
        Verdict::Allow(_) => {
            json!({ "decision": true, "context": { "reasons": d.reasons, "policy_hash": d.policy_hash,
                "component_hash": component_hash } })
        }
        Verdict::Deny(den) => json!({ "decision": false, "context": {
            "code": den.code, "reason": den.message, "reasons": d.reasons, "policy_hash": d.policy_hash,
            "component_hash": component_hash } }),
        Verdict::StepUpRequired(s) => json!({ "decision": false, "context": {
            "code": "step-up-required", "reason": s.message, "acr_values": s.acr_values,
            "max_age": s.max_age, "reasons": d.reasons, "policy_hash": d.policy_hash,
            "component_hash": component_hash } }),
        Verdict::ApprovalRequired(ch) => {
            let mut a = json!({ "decision": false, "context": {
            "approval_required": full["verdict"], "ask": full["ask"], "reasons": d.reasons,
            "policy_hash": d.policy_hash, "component_hash": component_hash } });
            if let (Some(more), Some(context)) = (
                members.and_then(|m| super::arap::binding::requestable(st, ch, m)),
                a["context"].as_object_mut(),
            ) {
                context.extend(more);
            }
            a
        }
    }
}

async fn evaluate(
    st: &AppState,
    v: &Version,
    pep: &mut Pep<'_>,
    e: &Evaluation,
) -> Result<Value, ApiError> {
    let subject = subject_of(st, v, pep, e).await?;
    // An approval echoed for re-evaluation (ARAP) is not a parameter of
    // the action: it is read apart, and the decision sees the rest.
    let mut e = e.clone();
    let presented = e.context.as_mut().and_then(|c| c.remove("approval"));
    let d = decide_one(st, v, &subject, &e)
        .await
        .map_err(ApiError::invalid_request)?;
    let d = act(st, v, d).await;
    // Requestable when the subject may ask: by their own token, or through
    // a trusted PEP allowed to submit access requests for those it vouches for.
    let members = match &subject {
        Subject::Token(_) => Some(e.members()),
        Subject::Vouched(_) => {
            let pep = pep.trusted(st).await?;
            trusted_pep(st, pep)?.may_request.then(|| e.members())
        }
    };
    let Some(presented) = presented else {
        st.metrics.decision("authzen", &d);
        return Ok(answer(st, v, &d, members));
    };
    Ok(super::arap::reevaluate::reevaluate(st, v, d, &presented, members).await)
}

/// `GET /.well-known/authzen-configuration`: the PDP metadata (AuthZEN
/// 1.0 §9). `policy_decision_point` is the public URL the well-known URL
/// is derived from, as a PEP checks; the search APIs are not offered.
pub async fn configuration(State(st): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({
        "policy_decision_point": st.public_url.trim_end_matches('/'),
        "access_evaluation_endpoint": st.url("/access/v1/evaluation"),
        "access_evaluations_endpoint": st.url("/access/v1/evaluations"),
        // AuthZEN ARAP (Draft 1): requestable denials, access requests,
        // and the keys that verify the binding token and approval state.
        "access_request_endpoint": super::arap::endpoint(&st),
        "jwks_uri": st.url("/.well-known/jwks.json"),
        "capabilities": [super::arap::CAPABILITY],
    }))
}

/// `POST /access/v1/evaluation`.
pub async fn evaluation(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Json<Evaluation>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(e) = body.map_err(|e| ApiError::rejected(e.status(), e.body_text()))?;
    let mut pep = Pep::new(&headers);
    let v = st.version();
    Ok(Json(evaluate(&st, &v, &mut pep, &e).await?))
}

/// `POST /access/v1/evaluations`: each item inherits the top-level subject,
/// action, resource and context it does not set. `options.evaluations_semantic`
/// is `execute_all` (the default), `deny_on_first_deny` or
/// `permit_on_first_permit`; the short-circuiting ones stop after the first
/// deny or permit and return the answers so far.
pub async fn evaluations(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Json<Evaluations>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(b) = body.map_err(|e| ApiError::rejected(e.status(), e.body_text()))?;
    let v = st.version();
    let mut pep = Pep::new(&headers);
    let semantic = match b
        .options
        .as_ref()
        .and_then(|o| o.get("evaluations_semantic"))
    {
        None => "execute_all",
        Some(Value::String(s))
            if [
                "execute_all",
                "deny_on_first_deny",
                "permit_on_first_permit",
            ]
            .contains(&s.as_str()) =>
        {
            s.as_str()
        }
        Some(other) => {
            return Err(ApiError::invalid_request(format!(
                "evaluations_semantic `{other}` is not one of execute_all, deny_on_first_deny, permit_on_first_permit"
            )));
        }
    };
    let defaults = Evaluation {
        subject: b.subject.clone(),
        action: b.action.clone(),
        resource: b.resource.clone(),
        context: b.context.clone(),
    };
    let items = match b.evaluations {
        None => {
            return Ok(Json(
                json!({ "evaluations": [evaluate(&st, &v, &mut pep, &defaults).await?] }),
            ));
        }
        Some(items) => items,
    };
    if items.len() > MAX_BATCH {
        return Err(ApiError::invalid_request(format!(
            "a batch has at most {MAX_BATCH} evaluations, this one has {}",
            items.len()
        )));
    }
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let merged = Evaluation {
            subject: item.subject.or_else(|| defaults.subject.clone()),
            action: item.action.or_else(|| defaults.action.clone()),
            resource: item.resource.or_else(|| defaults.resource.clone()),
            context: item.context.or_else(|| defaults.context.clone()),
        };
        let a = evaluate(&st, &v, &mut pep, &merged).await?;
        let permit = a["decision"] == true;
        out.push(a);
        if (semantic == "deny_on_first_deny" && !permit)
            || (semantic == "permit_on_first_permit" && permit)
        {
            break;
        }
    }
    Ok(Json(json!({ "evaluations": out })))
}
