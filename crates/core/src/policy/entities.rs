//! Entity data: the entities a bundle ships in `entities.json` and those a
//! host adds to one request, and how they meet the principal and resource
//! a request names.
//!
//! Both are Cedar's entity JSON in its plain form: a list of
//! `{"uid": {"type": T, "id": I}, "attrs": {...}, "parents": [{"type": T,
//! "id": I}, ...]}` (`attrs` and `parents` may be left out). The rules:
//!
//! - **The principal** is the entity of the token's subject (or of the
//!   subject a trusted host vouches for). When the data holds an entity
//!   with the same uid, it is one entity: the data's parents and
//!   attributes, with the token's attributes beside them. An entity of the
//!   principal type in the data may not carry an attribute a token gives
//!   (`sub`, `client_id`, `scopes`, `groups`, `roles`, `tenant`, `issuer`
//!   and the mapped ones): the bundle is refused, so
//!   the data can neither shadow nor be shadowed by a token.
//! - **The resource** is the entity the request names, with the attributes
//!   the request gives (a route's resource parameters, AuthZEN's
//!   `resource.properties`). When the data (or the host, for this request)
//!   holds an entity with the same uid, it is one entity: its parents and
//!   attributes with the request's beside them. An attribute both give is
//!   refused (the request is denied as invalid): a request never overrides
//!   a fact the data states, nor is silently overridden by it. An
//!   attribute the data leaves out may come from the request, as the route
//!   or the PEP says: give every attribute a policy relies on in the data
//!   (or require it in the schema).
//! - **A resource of the principal type** (the principal itself, or
//!   another person) takes no attributes from the request, whose giving
//!   any is denied as invalid: a person's facts come from tokens and
//!   entity data.
//! - **A host's entities** for one request (what a gateway has just looked
//!   up) stand beside the data and replace a data entity of the same uid
//!   whole, parents included: they are the fresher fact, so a host gives
//!   every parent. They may not name the principal, whose facts come from
//!   the token, nor an action, and may name an entity once.
//! - An entity of the principal type in the data is held to the schema as
//!   it would be merged with a token's attributes, and stands without them
//!   when it is not the principal (a policy reading another person's token
//!   attributes finds none).
//! - Actions are never data: they come from the policies and the schema.
//! - A decision carries only the data it can reach: the principal's and
//!   the resource's ancestors, the entities their attributes name, and the
//!   entities the policies name (`Role::"admin"`), each with what it
//!   reaches in turn. Its cost does not grow with the data.
//! - The data is bounded: at most [`MAX_DATA_ENTITIES`] entities and
//!   [`MAX_DATA_ANCESTRY`] entity-ancestor pairs; a host's entities at most
//!   [`MAX_REQUEST_ENTITIES_BYTES`].
//!
//! Only hosts give entities: Greenlight's HTTP APIs take none from their
//! callers, who are not trusted to state facts.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use cedar_policy::{Entities, Entity, Schema};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::prebuilt::Prebuilt;
use super::{diag_message, values};
use crate::bundle::find_at;

/// The most entities a bundle's `entities.json` may hold.
pub const MAX_DATA_ENTITIES: usize = 10_000;

/// The most entity-ancestor pairs a bundle's entity data may hold (every
/// entity counted with each of its ancestors): what loading computes, and
/// the most a decision could carry.
pub const MAX_DATA_ANCESTRY: usize = 100_000;

/// The largest entities document a host may add to one request, in bytes.
pub const MAX_REQUEST_ENTITIES_BYTES: usize = 64 * 1024;

/// An entity's uid in Cedar's entity JSON.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Uid {
    /// The entity type, e.g. `Role`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The entity id, e.g. `admin`.
    pub id: String,
}

impl std::fmt::Display for Uid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}::{:?}", self.kind, self.id)
    }
}

/// One entity in Cedar's entity JSON (plain form; no tags).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntityJson {
    /// Its uid.
    pub uid: Uid,
    /// Its attributes.
    #[serde(default)]
    pub attrs: Map<String, Value>,
    /// Its direct parents.
    #[serde(default)]
    pub parents: Vec<Uid>,
}

impl EntityJson {
    fn new(uid: Uid) -> Self {
        Self {
            uid,
            attrs: Map::new(),
            parents: Vec::new(),
        }
    }
}

/// A uid as Cedar's, when its type is a valid name.
fn cedar_uid(uid: &Uid) -> Option<cedar_policy::EntityUid> {
    super::uid(&uid.kind, &uid.id).ok()
}

/// Whether an entity type is an action type (`Action`, `Ns::Action`).
pub(crate) fn is_action(kind: &str) -> bool {
    kind == "Action" || kind.ends_with("::Action")
}

/// Cedar's complaint, with its causes (where it says what does not fit).
pub(super) fn with_causes(e: &impl miette::Diagnostic) -> String {
    let mut message = diag_message(e);
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !message.contains(&text) {
            message.push_str(&format!(": {text}"));
        }
        cause = c.source();
    }
    message
}

/// A bundle's entity data, checked against the schema when there is one.
#[derive(Clone, Debug, Default)]
pub struct EntityData {
    /// Each entity as written, to merge a request's principal and resource
    /// with.
    by_uid: BTreeMap<Uid, EntityJson>,
    /// The same entities for Cedar, each with all its ancestors (those of
    /// the principal type without a token's attributes).
    parsed: HashMap<Uid, Entity>,
    /// The schema's action entities (their groups), which every request's
    /// entities carry.
    actions: Vec<Entity>,
    /// The entities the policies name (`Role::"admin"`) and what they
    /// reach, which every request's entities carry.
    named: Vec<Uid>,
}

/// A problem in `entities.json`: where (a byte offset or a line and
/// column) and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataProblem {
    /// 1-based line and column, where known.
    pub at: Option<(u32, u32)>,
    /// What is wrong.
    pub message: String,
}

impl EntityData {
    /// Reads `entities.json`. `principal_type` and `token` (a principal's
    /// attributes from a token, with sample values: the built-in and the
    /// mapped ones) say what a principal entity in the data may not
    /// repeat, and what it is checked against the schema with.
    pub fn load(
        text: &str,
        schema: Option<&Schema>,
        principal_type: &str,
        token: &Map<String, Value>,
    ) -> Result<Self, Vec<DataProblem>> {
        let list: Vec<EntityJson> = serde_json::from_str(text).map_err(|e| {
            vec![DataProblem {
                at: Some((
                    u32::try_from(e.line().max(1)).unwrap_or(u32::MAX),
                    u32::try_from(e.column().max(1)).unwrap_or(u32::MAX),
                )),
                message: format!(
                    "not a list of entities in Cedar's entity JSON ({{\"uid\": {{\"type\", \"id\"}}, \"attrs\", \"parents\"}}): {e}"
                ),
            }]
        })?;
        let mut problems = Vec::new();
        let at = |uid: &Uid| find_at(text, &serde_json::to_string(&uid.id).unwrap_or_default());
        if list.len() > MAX_DATA_ENTITIES {
            problems.push(DataProblem {
                at: None,
                message: format!(
                    "{} entities, more than the {MAX_DATA_ENTITIES} a bundle may hold",
                    list.len()
                ),
            });
        }
        let mut by_uid = BTreeMap::new();
        for e in &list {
            let mut refuse = |message: String| {
                problems.push(DataProblem {
                    at: at(&e.uid),
                    message,
                })
            };
            if is_action(&e.uid.kind) || e.parents.iter().any(|p| is_action(&p.kind)) {
                refuse(format!(
                    "{} is or names an action: actions come from the policies and the schema, not from data",
                    e.uid
                ));
            }
            if e.uid.kind == principal_type {
                for name in e.attrs.keys() {
                    if token.contains_key(name) {
                        refuse(format!(
                            "{} has attribute `{name}`, which a principal takes from its token: give it another name, or make the entity a parent (`principal in {}`)",
                            e.uid, e.uid
                        ));
                    }
                }
            }
            if by_uid.insert(e.uid.clone(), e.clone()).is_some() {
                refuse(format!("{} is given twice", e.uid));
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let (principals, others): (Vec<&EntityJson>, Vec<&EntityJson>) =
            list.iter().partition(|e| e.uid.kind == principal_type);
        // A principal-type entity is read against the schema as it will
        // meet its token (sample values for the token's attributes), then
        // kept without them: with its parents, so that what lies below it
        // has every ancestor.
        let mut principal_entities = Vec::with_capacity(principals.len());
        for p in principals {
            let mut merged = p.clone();
            merged
                .attrs
                .extend(token.iter().map(|(k, v)| (k.clone(), v.clone())));
            let read = serde_json::to_value(&merged)
                .map_err(|e| e.to_string())
                .and_then(|v| Entity::from_json_value(v, schema).map_err(|e| with_causes(&e)))
                .and_then(|entity| {
                    let (uid, mut attrs, parents) = entity.into_inner();
                    attrs.retain(|k, _| !token.contains_key(k));
                    Entity::new(uid, attrs, parents).map_err(|e| e.to_string())
                });
            match read {
                Ok(entity) => principal_entities.push(entity),
                Err(why) => problems.push(DataProblem {
                    at: at(&p.uid),
                    message: format!(
                        "{} does not fit as a principal with a token's attributes: {why}",
                        p.uid
                    ),
                }),
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let refuse = |message: String| vec![DataProblem { at: None, message }];
        let entities = if list.is_empty() {
            None
        } else {
            let value = serde_json::to_value(&others).map_err(|e| refuse(e.to_string()))?;
            let unfit = |e: cedar_policy::entities_errors::EntitiesError| {
                refuse(format!("the entities do not fit: {}", with_causes(&e)))
            };
            let entities = Entities::from_json_value(value, schema)
                .map_err(unfit)?
                .add_entities(principal_entities, None)
                .map_err(unfit)?;
            // What every request copies and re-closes: bounded.
            let ancestry: usize = list
                .iter()
                .filter_map(|e| {
                    let uid = cedar_uid(&e.uid)?;
                    entities.ancestors(&uid).map(Iterator::count)
                })
                .sum();
            if ancestry > MAX_DATA_ANCESTRY {
                return Err(refuse(format!(
                    "the entities have {ancestry} entity-ancestor pairs, more than the {MAX_DATA_ANCESTRY} a bundle may hold"
                )));
            }
            Some(entities)
        };
        let parsed = entities
            .as_ref()
            .map(|all| {
                list.iter()
                    .filter_map(|e| {
                        let entity = all.get(&cedar_uid(&e.uid)?)?.clone();
                        Some((e.uid.clone(), entity))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let actions = match (schema, list.is_empty()) {
            (Some(s), false) => s
                .action_entities()
                .map(|a| a.iter().cloned().collect())
                .map_err(|e| refuse(format!("the schema's actions: {}", with_causes(&e))))?,
            _ => Vec::new(),
        };
        Ok(Self {
            by_uid,
            parsed,
            actions,
            named: Vec::new(),
        })
    }

    /// Names the entities the policies name, which every request carries.
    /// The closure is taken here, once: every request carries it as is.
    pub(super) fn name(&mut self, named: Vec<Uid>) {
        self.named = self.reach(named, &BTreeSet::new());
    }

    /// The data entities `start` reaches, `start` included: through
    /// parents and the entities attributes name, never entering `skip`.
    fn reach(&self, start: Vec<Uid>, skip: &BTreeSet<&Uid>) -> Vec<Uid> {
        let mut want = start;
        let mut seen = BTreeSet::new();
        let mut reached = Vec::new();
        while let Some(uid) = want.pop() {
            if skip.contains(&uid) || seen.contains(&uid) {
                continue;
            }
            if let Some(raw) = self.by_uid.get(&uid) {
                want.extend(raw.parents.iter().cloned());
                named_in(&raw.attrs, &mut want);
                reached.push(uid.clone());
            }
            seen.insert(uid);
        }
        reached
    }

    /// How many entities the data holds.
    pub fn len(&self) -> usize {
        self.by_uid.len()
    }

    /// Whether the data holds none.
    pub fn is_empty(&self) -> bool {
        self.by_uid.is_empty()
    }

    /// The entity with this uid, as written.
    pub fn get(&self, uid: &Uid) -> Option<&EntityJson> {
        self.by_uid.get(uid)
    }

    /// The entities one request brings, merged with the data by the rules
    /// of this module, and the data entities they reach.
    pub(super) fn merge(
        &self,
        principal_uid: Uid,
        resource: (Uid, Map<String, Value>),
        extra: &[EntityJson],
    ) -> Result<Merged, String> {
        let (resource_uid, resource_attrs) = resource;
        let mut seen = BTreeSet::new();
        for e in extra {
            if e.uid == principal_uid {
                return Err(format!(
                    "the host's entities may not give the principal ({}): its facts come from its token",
                    e.uid
                ));
            }
            if !seen.insert(&e.uid) {
                return Err(format!("the host's entities give {} twice", e.uid));
            }
        }
        // The principal's token attributes join it where it is read
        // ([`with_token`]): a cached principal needs none of them.
        let p = self
            .by_uid
            .get(&principal_uid)
            .cloned()
            .unwrap_or_else(|| EntityJson::new(principal_uid.clone()));
        let mut own = Vec::with_capacity(extra.len() + 2);
        // A resource of the principal type is a person: their facts come
        // from tokens and entity data, never from the request.
        let person = resource_uid.kind == principal_uid.kind;
        if person {
            if !resource_attrs.is_empty() {
                return Err(format!(
                    "the resource {resource_uid} is of the principal type: its attributes come from tokens and entity data, not from the request"
                ));
            }
        } else {
            let mut resource = extra
                .iter()
                .find(|e| e.uid == resource_uid)
                .or_else(|| self.by_uid.get(&resource_uid))
                .cloned()
                .unwrap_or_else(|| EntityJson::new(resource_uid.clone()));
            for (name, value) in resource_attrs {
                if resource.attrs.contains_key(&name) {
                    return Err(format!(
                        "attribute `{name}` of the resource {} is given by both the request and entity data",
                        resource.uid
                    ));
                }
                resource.attrs.insert(name, value);
            }
            own.push(resource);
        }
        let principal_at = own.len();
        own.push(p);
        own.extend(
            extra
                .iter()
                .filter(|e| person || e.uid != resource_uid)
                .cloned(),
        );
        if self.is_empty() {
            return Ok(Merged {
                own,
                principal_at,
                reached: Vec::new(),
            });
        }
        // The data the request's own entities reach (parents, entities
        // their attributes name, and what the policies name), each with
        // all its ancestors: what a decision can see, and no more than
        // that to copy.
        let mine: BTreeSet<&Uid> = own.iter().map(|e| &e.uid).collect();
        let mut skip = mine.clone();
        skip.extend(&self.named);
        let mut start = Vec::new();
        for e in &own {
            start.extend(e.parents.iter().cloned());
            named_in(&e.attrs, &mut start);
        }
        let reached: Vec<Entity> = self
            .reach(start, &skip)
            .iter()
            .chain(self.named.iter().filter(|u| !mine.contains(u)))
            .filter_map(|u| self.parsed.get(u).cloned())
            .collect();
        Ok(Merged {
            own,
            principal_at,
            reached,
        })
    }

    /// The entities Cedar sees for one request, each of the request's own
    /// read by Cedar's JSON reader and held to the schema.
    pub(super) fn read_json(
        &self,
        schema: Option<&Schema>,
        merged: Merged,
        token: Map<String, Value>,
    ) -> Result<Entities, String> {
        let Merged {
            mut own,
            principal_at,
            reached,
        } = merged;
        own[principal_at] = with_token(&own[principal_at], token)?;
        let fit = |e: &dyn std::fmt::Display| format!("the request's entities do not fit: {e}");
        if self.is_empty() {
            let value = serde_json::to_value(&own).map_err(|e| fit(&e))?;
            return Entities::from_json_value(value, schema).map_err(|e| fit(&with_causes(&e)));
        }
        let mut entities = Vec::with_capacity(own.len() + reached.len() + self.actions.len());
        for e in &own {
            let value = serde_json::to_value(e).map_err(|e| fit(&e))?;
            entities
                .push(Entity::from_json_value(value, schema).map_err(|e| fit(&with_causes(&e)))?);
        }
        entities.extend(reached);
        entities.extend(self.actions.iter().cloned());
        Entities::from_entities(entities, None).map_err(|e| fit(&with_causes(&e)))
    }

    /// The same entities as [`Self::read_json`], the request's own built
    /// directly ([`values::entity`]) and held to the schema: `None` when
    /// one is not plain JSON or does not fit, for Cedar's reader to say
    /// why or to read it by the schema.
    ///
    /// `principal` gives the principal's entity held to the schema, given
    /// a way to build it (a cache may not need to). `prebuilt` is what the
    /// schema lets a request skip ([`Prebuilt`]).
    pub(super) fn build(
        &self,
        schema: Option<&Schema>,
        prebuilt: Option<&Prebuilt>,
        merged: &Merged,
        principal: impl FnOnce(&dyn Fn(Map<String, Value>) -> Option<Entity>) -> Option<Entity>,
    ) -> Option<Entities> {
        let p = &merged.own[merged.principal_at];
        let principal = principal(&|token| values::entity(&with_token(p, token).ok()?))?;
        let own = || {
            merged
                .own
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != merged.principal_at)
                .map(|(_, e)| e)
        };
        let others = own().map(values::entity).collect::<Option<Vec<_>>>()?;
        // The principal was held to the schema when it was built, the data
        // when it was loaded.
        let checked = std::iter::once(principal).chain(merged.reached.iter().cloned());
        match prebuilt {
            // Each of the request's own entities conforms by its type:
            // the schema's actions, built once, take them unchecked.
            Some(pre) if own().all(|e| pre.conforms(e)) => pre
                .actions()
                .add_entities(others.into_iter().chain(checked), None)
                .ok(),
            // With a schema, Cedar adds its actions here (as its reader does).
            _ => Entities::from_entities(others, schema)
                .ok()?
                .add_entities(checked, None)
                .ok(),
        }
    }
}

/// The principal's entity (from the data, or bare) with its token's
/// attributes beside the data's: refused when both give one (loading
/// refuses such data, so this holds by construction).
fn with_token(p: &EntityJson, token: Map<String, Value>) -> Result<EntityJson, String> {
    let mut p = p.clone();
    for (name, value) in token {
        if p.attrs.contains_key(&name) {
            return Err(format!(
                "attribute `{name}` of the principal {} is given by both its token and entity data",
                p.uid
            ));
        }
        p.attrs.insert(name, value);
    }
    Ok(p)
}

/// One request's own entities (the resource, the principal, the host's),
/// merged with the data, and the data entities they reach.
#[derive(Clone, Debug)]
pub(super) struct Merged {
    own: Vec<EntityJson>,
    /// Where the principal is in `own`.
    principal_at: usize,
    reached: Vec<Entity>,
}

/// Adds to `out` every entity uid `attrs` may name: `{"__entity": {"type",
/// "id"}}`, and `{"type", "id"}` as a schema lets an entity be written (a
/// record of that shape is taken too: one entity more is harmless).
fn named_in(attrs: &Map<String, Value>, out: &mut Vec<Uid>) {
    fn walk(v: &Value, out: &mut Vec<Uid>) {
        match v {
            Value::Object(m) => {
                let inner = match m.get("__entity") {
                    Some(Value::Object(e)) => e,
                    _ => m,
                };
                if let (Some(Value::String(kind)), Some(Value::String(id))) =
                    (inner.get("type"), inner.get("id"))
                {
                    out.push(Uid {
                        kind: kind.clone(),
                        id: id.clone(),
                    });
                }
                m.values().for_each(|v| walk(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    attrs.values().for_each(|v| walk(v, out));
}

/// Reads the entities a host gives with one request: bounded, Cedar's
/// entity JSON in its plain form, no action among them.
pub fn request_entities(text: Option<&str>) -> Result<Vec<EntityJson>, String> {
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    if text.len() > MAX_REQUEST_ENTITIES_BYTES {
        return Err(format!(
            "the entities have {} bytes, more than the {MAX_REQUEST_ENTITIES_BYTES} accepted",
            text.len()
        ));
    }
    let list: Vec<EntityJson> = serde_json::from_str(text).map_err(|e| {
        format!("the entities are not a list of entities in Cedar's entity JSON: {e}")
    })?;
    if let Some(e) = list
        .iter()
        .find(|e| is_action(&e.uid.kind) || e.parents.iter().any(|p| is_action(&p.kind)))
    {
        return Err(format!(
            "the entities may not give or name an action ({}): actions come from the policies",
            e.uid
        ));
    }
    Ok(list)
}
