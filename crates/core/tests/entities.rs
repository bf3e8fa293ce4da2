//! Entity data: a bundle's `entities.json` and a host's entities for one
//! request, and the rules by which they meet the request's principal and
//! resource (crates/core/src/policy/entities.rs).

use std::path::Path;

use greenlight_core::{AccessRequest, Engine, LoadError, Principal, Problem, ProblemKind, Verdict};
use serde_json::{Value, json};

const ISSUER: &str = "https://idp.example.com";
const NOW: u64 = 1_767_225_600;

const CONFIG: &str = r#"
[[issuers]]
issuer = "https://idp.example.com"
audience = "https://api.example.com"
algorithms = ["EdDSA"]
jwks = "idp.jwks.json"

[principal]
entity_type = "User"

[principal.attributes.department]
claim = "department"
type = "String"
"#;

const POLICY: &str = r#"
@id("finance-reads")
permit (principal in Group::"finance", action == Action::"read", resource is Document)
when { principal has level && principal.level >= 2 };

@id("owner-edits")
permit (principal, action == Action::"edit", resource is Document)
when { resource has owner && resource.owner == principal.sub && resource has title };

@id("shared-reads")
permit (principal, action == Action::"view", resource in Folder::"shared");

// Reaches data through an attribute naming an entity, and a literal.
@id("open-folder-views")
permit (principal, action == Action::"view", resource is Document)
when { resource has folder && resource.folder has open && resource.folder.open };

@id("finance-audits")
permit (principal, action == Action::"audit", resource)
when { Group::"finance" has open && Group::"finance".open };

@id("suspended-owners")
forbid (principal, action == Action::"view", resource in Group::"suspended");

@id("self-view")
permit (principal, action == Action::"self", resource is User)
when { resource == principal && resource has nickname };
"#;

fn data() -> Value {
    json!([
        { "uid": { "type": "Group", "id": "finance" }, "attrs": { "open": true } },
        { "uid": { "type": "Folder", "id": "hr" }, "attrs": { "open": true } },
        { "uid": { "type": "Document", "id": "d6" },
          "attrs": { "folder": { "__entity": { "type": "Folder", "id": "hr" } } } },
        { "uid": { "type": "User", "id": "alice" }, "attrs": { "level": 3, "nickname": "al" },
          "parents": [{ "type": "Group", "id": "finance" }] },
        { "uid": { "type": "User", "id": "bob" }, "attrs": { "level": 1 },
          "parents": [{ "type": "Group", "id": "finance" }, { "type": "Group", "id": "suspended" }] },
        { "uid": { "type": "Document", "id": "d5" },
          "parents": [{ "type": "Folder", "id": "shared" }, { "type": "User", "id": "bob" }] },
        { "uid": { "type": "Document", "id": "d1" }, "attrs": { "owner": "alice" },
          "parents": [{ "type": "Folder", "id": "private" }] },
    ])
}

fn files(entities: Option<&str>, schema: Option<&str>) -> Vec<(String, String)> {
    let jwks = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/bundle/idp.jwks.json"),
    )
    .expect("jwks");
    let mut files = vec![
        ("greenlight.toml".to_owned(), CONFIG.to_owned()),
        ("policy.cedar".to_owned(), POLICY.to_owned()),
        ("idp.jwks.json".to_owned(), jwks),
    ];
    if let Some(e) = entities {
        files.push(("entities.json".to_owned(), e.to_owned()));
    }
    if let Some(s) = schema {
        files.push(("schema.cedarschema".to_owned(), s.to_owned()));
    }
    files
}

fn engine() -> Engine {
    Engine::load(&files(Some(&data().to_string()), None)).expect("bundle with data")
}

fn problems(entities: &str) -> Vec<Problem> {
    match Engine::load(&files(Some(entities), None)) {
        Err(LoadError::InvalidBundle(p)) => p,
        other => panic!("expected problems, got {other:?}"),
    }
}

fn who(sub: &str) -> Principal {
    Principal {
        entity_type: "User".to_owned(),
        subject: sub.to_owned(),
        issuer: ISSUER.to_owned(),
        ..Principal::default()
    }
}

fn request(action: &str, kind: &str, id: &str, props: Option<Value>) -> AccessRequest {
    AccessRequest {
        action: action.to_owned(),
        resource_type: kind.to_owned(),
        resource_id: id.to_owned(),
        resource_properties: props.map(|p| p.to_string()),
        ..AccessRequest::default()
    }
}

fn with_entities(mut r: AccessRequest, entities: Value) -> AccessRequest {
    r.entities = Some(entities.to_string());
    r
}

/// The verdict in short: `allow by POLICIES` or `deny CODE: MESSAGE`.
fn verdict(e: &Engine, sub: &str, r: &AccessRequest) -> String {
    let d = e.evaluate_as(&who(sub), r, NOW);
    match d.verdict {
        Verdict::Allow(_) => format!("allow by {}", d.reasons.join(",")),
        Verdict::Deny(den) => format!("deny {}: {}", den.code.as_str(), den.message),
        other => format!("{other:?}"),
    }
}

#[test]
fn data_gives_the_principal_parents_and_attributes() {
    let e = engine();
    let read = request("read", "Document", "d9", None);
    assert_eq!(verdict(&e, "alice", &read), "allow by finance-reads");
    // In the group, but the data gives bob level 1.
    assert_eq!(
        verdict(&e, "bob", &read),
        "deny policy-no-permit: no policy permits `read` on `Document::d9`"
    );
    // Not in the data: no parents, no attributes.
    assert_eq!(
        verdict(&e, "carol", &read),
        "deny policy-no-permit: no policy permits `read` on `Document::d9`"
    );
    // Another issuer's alice is another entity (`ISSUER#alice`).
    let mut stranger = who("alice");
    stranger.issuer = "https://other.example.com".to_owned();
    let d = e.evaluate_as(&stranger, &read, NOW);
    assert!(matches!(d.verdict, Verdict::Deny(_)), "{d:?}");
}

#[test]
fn a_resource_in_data_and_in_the_request_is_one_entity() {
    let e = engine();
    // The owner from data, the title from the request: one entity.
    let edit = request("edit", "Document", "d1", Some(json!({ "title": "Q3" })));
    assert_eq!(verdict(&e, "alice", &edit), "allow by owner-edits");
    assert_eq!(
        verdict(&e, "bob", &edit),
        "deny policy-no-permit: no policy permits `edit` on `Document::d1`"
    );
    // The request may not contradict the data, nor restate it.
    let forged = request(
        "edit",
        "Document",
        "d1",
        Some(json!({ "title": "Q3", "owner": "bob" })),
    );
    assert_eq!(
        verdict(&e, "bob", &forged),
        "deny request-invalid: attribute `owner` of the resource Document::\"d1\" is given by both the request and entity data"
    );
    let restated = request(
        "edit",
        "Document",
        "d1",
        Some(json!({ "title": "Q3", "owner": "alice" })),
    );
    assert_eq!(
        verdict(&e, "alice", &restated),
        "deny request-invalid: attribute `owner` of the resource Document::\"d1\" is given by both the request and entity data"
    );
    // A resource the data does not hold takes the request's attributes.
    let other = request(
        "edit",
        "Document",
        "d2",
        Some(json!({ "title": "x", "owner": "bob" })),
    );
    assert_eq!(verdict(&e, "bob", &other), "allow by owner-edits");
}

#[test]
fn a_resource_of_the_principal_type_takes_nothing_from_the_request() {
    let e = engine();
    let me = request("self", "User", "alice", None);
    assert_eq!(verdict(&e, "alice", &me), "allow by self-view");
    // Carol, whom the data does not know, may not give herself the
    // nickname the policy wants; nor alice rename herself.
    let named = request("self", "User", "carol", Some(json!({ "nickname": "c" })));
    assert_eq!(
        verdict(&e, "carol", &named),
        "deny request-invalid: the resource User::\"carol\" is of the principal type: its attributes come from tokens and entity data, not from the request"
    );
    let renamed = request("self", "User", "alice", Some(json!({ "nickname": "x" })));
    assert_eq!(
        verdict(&e, "alice", &renamed),
        "deny request-invalid: the resource User::\"alice\" is of the principal type: its attributes come from tokens and entity data, not from the request"
    );
    // Nor say what another person's token would.
    let other = request("self", "User", "bob", Some(json!({ "tenant": "acme" })));
    assert_eq!(
        verdict(&e, "alice", &other),
        "deny request-invalid: the resource User::\"bob\" is of the principal type: its attributes come from tokens and entity data, not from the request"
    );
    // The same without data.
    let bare = Engine::load(&files(None, None)).expect("bundle");
    assert_eq!(
        verdict(&bare, "carol", &named),
        "deny request-invalid: the resource User::\"carol\" is of the principal type: its attributes come from tokens and entity data, not from the request"
    );
}

/// What lies below a person in the data has every ancestor through them:
/// a document of bob's, who is suspended, is forbidden to view although
/// it sits in the shared folder.
#[test]
fn ancestors_through_a_person_in_the_data_count() {
    let e = engine();
    assert_eq!(
        verdict(&e, "alice", &request("view", "Document", "d5", None)),
        "deny policy-forbidden: `view` on `Document::d5` is forbidden by policy `suspended-owners`"
    );
}

/// A decision carries the data it can reach: an entity an attribute names
/// (the document's folder) and one a policy names (the finance group),
/// with their attributes, though neither is the principal, the resource or
/// an ancestor of either.
#[test]
fn a_decision_reaches_what_attributes_and_policies_name() {
    let e = engine();
    assert_eq!(
        verdict(&e, "carol", &request("view", "Document", "d6", None)),
        "allow by open-folder-views"
    );
    assert_eq!(
        verdict(&e, "carol", &request("audit", "Document", "d9", None)),
        "allow by finance-audits"
    );
}

/// Data whose hierarchy is too deep to copy on every decision is refused.
#[test]
fn entity_data_is_bounded() {
    let chain: Vec<Value> = (0..500)
        .map(|i| {
            json!({ "uid": { "type": "Group", "id": format!("g{i}") },
                          "parents": [{ "type": "Group", "id": format!("g{}", i + 1) }] })
        })
        .collect();
    let p = problems(&Value::Array(chain).to_string());
    assert_eq!(
        p.iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec![
            "entities.json: the entities have 125250 entity-ancestor pairs, more than the 100000 a bundle may hold"
        ]
    );
}

#[test]
fn a_host_adds_entities_for_one_request() {
    let e = engine();
    let view = request("view", "Document", "d2", None);
    assert_eq!(
        verdict(&e, "alice", &view),
        "deny policy-no-permit: no policy permits `view` on `Document::d2`"
    );
    let looked_up = json!([
        { "uid": { "type": "Document", "id": "d2" }, "parents": [{ "type": "Folder", "id": "shared" }] }
    ]);
    assert_eq!(
        verdict(&e, "alice", &with_entities(view.clone(), looked_up.clone())),
        "allow by shared-reads"
    );
    // Also in a bundle without data.
    let bare = Engine::load(&files(None, None)).expect("bundle");
    assert_eq!(
        verdict(&bare, "alice", &with_entities(view, looked_up)),
        "allow by shared-reads"
    );
    // The host's entity replaces the data's: d1 has moved to the shared folder.
    let view1 = request("view", "Document", "d1", None);
    assert_eq!(
        verdict(&e, "alice", &view1),
        "deny policy-no-permit: no policy permits `view` on `Document::d1`"
    );
    let moved = json!([
        { "uid": { "type": "Document", "id": "d1" }, "attrs": { "owner": "alice" },
          "parents": [{ "type": "Folder", "id": "shared" }] }
    ]);
    assert_eq!(
        verdict(&e, "bob", &with_entities(view1, moved)),
        "allow by shared-reads"
    );
    // The host's resource entity merges with the request's attributes
    // under the same rule as data.
    let edit = request("edit", "Document", "d3", Some(json!({ "title": "t" })));
    let owned = json!([{ "uid": { "type": "Document", "id": "d3" }, "attrs": { "owner": "bob" } }]);
    assert_eq!(
        verdict(&e, "bob", &with_entities(edit, owned.clone())),
        "allow by owner-edits"
    );
    let forged = request(
        "edit",
        "Document",
        "d3",
        Some(json!({ "title": "t", "owner": "alice" })),
    );
    assert_eq!(
        verdict(&e, "alice", &with_entities(forged, owned)),
        "deny request-invalid: attribute `owner` of the resource Document::\"d3\" is given by both the request and entity data"
    );
}

#[test]
fn a_host_may_not_restate_the_principal_or_an_action() {
    let e = engine();
    let read = request("read", "Document", "d9", None);
    // Bob raising his own level through the host's entities.
    let raised = json!([{ "uid": { "type": "User", "id": "bob" }, "attrs": { "level": 5 },
        "parents": [{ "type": "Group", "id": "finance" }] }]);
    assert_eq!(
        verdict(&e, "bob", &with_entities(read.clone(), raised.clone())),
        "deny request-invalid: the host's entities may not give the principal (User::\"bob\"): its facts come from its token"
    );
    // Another user's entity is a fact like any other.
    assert_eq!(
        verdict(&e, "alice", &with_entities(read.clone(), raised)),
        "allow by finance-reads"
    );
    for (entities, message) in [
        (
            json!([{ "uid": { "type": "Action", "id": "read" } }]),
            "the entities may not give or name an action (Action::\"read\"): actions come from the policies",
        ),
        (
            json!([{ "uid": { "type": "Group", "id": "g" }, "parents": [{ "type": "Action", "id": "read" }] }]),
            "the entities may not give or name an action (Group::\"g\"): actions come from the policies",
        ),
        (
            json!([{ "uid": { "type": "Group", "id": "g" } }, { "uid": { "type": "Group", "id": "g" } }]),
            "the host's entities give Group::\"g\" twice",
        ),
        (
            json!({ "uid": { "type": "Group", "id": "g" } }),
            "the entities are not a list of entities in Cedar's entity JSON: invalid type: map, expected a sequence at line 1 column 0",
        ),
        (
            json!([{ "uid": { "type": "Group", "id": "g" }, "tags": {} }]),
            "the entities are not a list of entities in Cedar's entity JSON: unknown field `tags`, expected one of `uid`, `attrs`, `parents` at line 1 column 40",
        ),
    ] {
        assert_eq!(
            verdict(&e, "alice", &with_entities(read.clone(), entities.clone())),
            format!("deny request-invalid: {message}"),
            "{entities}"
        );
    }
    let big = format!(
        "[{}]",
        vec![r#"{"uid":{"type":"G","id":"x"}}"#; 3000].join(",")
    );
    let mut r = read;
    r.entities = Some(big.clone());
    assert_eq!(
        verdict(&e, "alice", &r),
        format!(
            "deny request-invalid: the entities have {} bytes, more than the 65536 accepted",
            big.len()
        )
    );
}

#[test]
fn entity_data_that_breaks_a_rule_refuses_the_bundle() {
    let p = problems(r#"[{"uid": {"type": "Action", "id": "read"}}]"#);
    assert_eq!(
        p,
        vec![Problem {
            kind: ProblemKind::InvalidEntities,
            file: "entities.json".to_owned(),
            line: Some(1),
            column: Some(35),
            message: "Action::\"read\" is or names an action: actions come from the policies and the schema, not from data".to_owned(),
        }]
    );
    // A principal-type entity may not carry what a token gives: neither a
    // built-in attribute nor a mapped one.
    let p = problems(
        r#"[
  {"uid": {"type": "User", "id": "alice"}, "attrs": {"roles": ["admin"]}},
  {"uid": {"type": "User", "id": "bob"}, "attrs": {"department": "finance"}},
  {"uid": {"type": "Group", "id": "g"}, "attrs": {"roles": "fine here"}},
  {"uid": {"type": "Group", "id": "g"}}
]"#,
    );
    let shown: Vec<String> = p.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        vec![
            "entities.json:2:34: User::\"alice\" has attribute `roles`, which a principal takes from its token: give it another name, or make the entity a parent (`principal in User::\"alice\"`)",
            "entities.json:3:34: User::\"bob\" has attribute `department`, which a principal takes from its token: give it another name, or make the entity a parent (`principal in User::\"bob\"`)",
            "entities.json:4:35: Group::\"g\" is given twice",
        ]
    );
    assert!(p.iter().all(|p| p.kind == ProblemKind::InvalidEntities));
    let p = problems(r#"{"uid": 1}"#);
    assert_eq!(
        p.iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec![
            "entities.json:1:1: not a list of entities in Cedar's entity JSON ({\"uid\": {\"type\", \"id\"}, \"attrs\", \"parents\"}): invalid type: map, expected a sequence at line 1 column 0"
        ]
    );
    let p = problems(r#"[{"uid": {"type": "no such type", "id": "x"}}]"#);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].message.starts_with("the entities do not fit: "),
        "{}",
        p[0].message
    );
}

#[test]
fn entity_data_is_held_to_the_schema() {
    const SCHEMA: &str = r#"
entity Group { open?: Bool };
entity Folder { open?: Bool };
entity User in [Group] {
  sub: String, client_id: String, scopes: Set<String>, groups: Set<String>,
  roles: Set<String>, tenant: String, issuer: String,
  department?: String, level?: Long, nickname?: String,
};
entity Document in [Folder, User] { owner?: String, title?: String, folder?: Folder };
action read, edit, view, audit appliesTo { principal: [User], resource: [Document] };
action self appliesTo { principal: [User], resource: [User] };
"#;
    let ok = Engine::load(&files(Some(&data().to_string()), Some(SCHEMA))).expect("fits");
    assert_eq!(
        verdict(&ok, "alice", &request("read", "Document", "d9", None)),
        "allow by finance-reads"
    );
    let refused = |data: Value| match Engine::load(&files(Some(&data.to_string()), Some(SCHEMA))) {
        Err(LoadError::InvalidBundle(p)) => p
            .iter()
            .map(|p| format!("{:?} {p}", p.kind))
            .collect::<Vec<_>>(),
        other => panic!("expected problems, got {other:?}"),
    };
    // A principal's facts are checked as they will meet a token's.
    assert_eq!(
        refused(
            json!([{ "uid": { "type": "User", "id": "alice" }, "attrs": { "level": "three" } }])
        ),
        vec![
            "InvalidEntities entities.json:1:29: User::\"alice\" does not fit as a principal with a token's attributes: entity does not conform to the schema: in attribute `level` on `User::\"alice\"`, type mismatch: value was expected to have type long, but it actually has type string: `\"three\"`"
        ]
    );
    assert_eq!(
        refused(json!([{ "uid": { "type": "Document", "id": "d1" }, "attrs": { "owner": 5 } }])),
        vec![
            "InvalidEntities entities.json: the entities do not fit: entity does not conform to the schema: in attribute `owner` on `Document::\"d1\"`, type mismatch: value was expected to have type string, but it actually has type long: `5`"
        ]
    );
}

/// An action is never a resource: a caller naming one (to reach the
/// schema's action hierarchy as if it were data) is refused.
#[test]
fn an_action_is_not_a_resource() {
    let e = engine();
    for kind in ["Action", "Payments::Action"] {
        assert_eq!(
            verdict(&e, "alice", &request("read", kind, "read", None)),
            format!("deny request-invalid: the resource type `{kind}` is an action's")
        );
    }
}
