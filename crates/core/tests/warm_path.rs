//! The warm path's shortcuts (issue 14): a request's values built directly
//! rather than through Cedar's JSON reader, the principal's entity kept
//! with its verified token, and each action's own policies. Each must
//! decide exactly as the plain way does; debug builds (these tests) also
//! decide every request through Cedar's reader and the whole policy set,
//! and panic where the two differ.

use greenlight_core::Principal;
use greenlight_core::policy::entities::{EntityData, EntityJson, Uid};
use greenlight_core::policy::{Outcome, Policies, PrincipalEntity, Query, SignIn};
use serde_json::{Map, Value, json};

const HOME: &str = "https://idp.example.com";

const SCHEMA: &str = r#"
entity Group;
entity User in [Group] {
  sub: String, client_id: String, scopes: Set<String>, groups: Set<String>,
  roles: Set<String>, tenant: String, issuer: String,
};
entity Host { owner?: User };
action connect appliesTo {
  principal: User, resource: Host,
  context: { ip: ipaddr, port: Long, note?: String }
};
action read appliesTo { principal: User, resource: Host, context: {} };
"#;

const POLICIES: &str = r#"
@id("finance-reads")
permit (principal in Group::"finance", action == Action::"read", resource);

@id("internal-connects")
permit (principal, action == Action::"connect", resource)
when { context.ip.isInRange(ip("10.0.0.0/8")) && context.port == 22 };

@id("owner-connects")
permit (principal, action == Action::"connect", resource)
when { resource has owner && resource.owner == principal && context.port == 2222 };
"#;

fn policies(data: Value) -> Policies {
    let mut p = Policies::load(POLICIES, Some(SCHEMA), 300).expect("policies");
    let sample = Principal {
        entity_type: "User".into(),
        subject: "sample".into(),
        issuer: "sample".into(),
        ..Principal::default()
    };
    let token = token_attrs(&sample);
    let data = EntityData::load(&data.to_string(), p.schema(), "User", &token).expect("data");
    p.set_data(data);
    p
}

/// The attribute names a token gives, with sample values.
fn token_attrs(p: &Principal) -> Map<String, Value> {
    json!({
        "sub": p.subject, "client_id": "", "scopes": [], "groups": [],
        "roles": [], "tenant": "", "issuer": p.issuer,
    })
    .as_object()
    .cloned()
    .unwrap_or_default()
}

fn alice() -> Principal {
    Principal {
        entity_type: "User".into(),
        subject: "alice".into(),
        issuer: HOME.into(),
        ..Principal::default()
    }
}

fn object(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

fn decide(
    p: &Policies,
    who: &Principal,
    action: &str,
    resource: (&str, Value),
    context: Value,
    cell: Option<&PrincipalEntity>,
) -> Outcome {
    p.decide(
        Query {
            principal: who,
            home: HOME,
            action,
            resource_type: "Host",
            resource_id: resource.0,
            resource_attrs: object(resource.1),
            context: object(context),
            entities: &[],
            principal_entity: cell,
        },
        &SignIn {
            acr: None,
            auth_time: None,
            now: 0,
            exempt: false,
        },
    )
}

fn allowed(id: &str) -> Outcome {
    Outcome::Allow(vec![id.to_owned()])
}

#[test]
fn a_principal_kept_for_one_bundle_is_never_used_by_another() {
    let finance = policies(json!([
        { "uid": { "type": "User", "id": "alice" }, "parents": [{ "type": "Group", "id": "finance" }] }
    ]));
    // The next bundle's data no longer puts alice in finance.
    let left = policies(json!([{ "uid": { "type": "User", "id": "alice" } }]));
    let cell = PrincipalEntity::default();
    let read = |p: &Policies| {
        decide(
            p,
            &alice(),
            "read",
            ("h1", json!({})),
            json!({}),
            Some(&cell),
        )
    };
    assert_eq!(read(&finance), allowed("finance-reads"));
    // Kept for `finance`: the other bundle builds its own.
    assert_eq!(read(&left), Outcome::NoPermit);
    assert_eq!(read(&finance), allowed("finance-reads"));
    let fresh = PrincipalEntity::default();
    assert_eq!(
        decide(
            &left,
            &alice(),
            "read",
            ("h1", json!({})),
            json!({}),
            Some(&fresh)
        ),
        Outcome::NoPermit
    );
    assert_eq!(read(&finance), allowed("finance-reads"));
}

#[test]
fn values_only_the_schema_reads_are_read_by_it() {
    let p = policies(json!([]));
    let connect = |context: Value| {
        decide(
            &p,
            &alice(),
            "connect",
            ("h1", json!({})),
            context,
            Some(&PrincipalEntity::default()),
        )
    };
    // A string where the schema wants an `ipaddr`: Cedar's reader takes it
    // as one.
    assert_eq!(
        connect(json!({"ip": "10.1.2.3", "port": 22})),
        allowed("internal-connects")
    );
    assert_eq!(
        connect(json!({"ip": "192.0.2.1", "port": 22})),
        Outcome::NoPermit
    );
    // The extension written out, built directly.
    assert_eq!(
        connect(json!({"ip": {"__extn": {"fn": "ip", "arg": "10.9.9.9"}}, "port": 22})),
        allowed("internal-connects")
    );
    // An entity written as `{"type", "id"}` where the schema wants one.
    let owned = decide(
        &p,
        &alice(),
        "connect",
        ("h2", json!({"owner": {"type": "User", "id": "alice"}})),
        json!({"ip": "192.0.2.1", "port": 2222}),
        None,
    );
    assert_eq!(owned, allowed("owner-connects"));
}

#[test]
fn values_that_fit_nowhere_are_refused_as_cedars_reader_says() {
    let p = policies(json!([]));
    let connect =
        |context: Value| match decide(&p, &alice(), "connect", ("h1", json!({})), context, None) {
            Outcome::Invalid(why) => why,
            other => panic!("{other:?}"),
        };
    let fit = "the request's context does not fit: ";
    for (context, says) in [
        (
            json!({"ip": "10.1.2.3", "port": 1.5}),
            "data did not match any variant of untagged enum RawCedarValueJson",
        ),
        (
            json!({"ip": "10.1.2.3", "port": null}),
            "while parsing context, found a `null`; JSON `null`s are not allowed in Cedar",
        ),
        (
            json!({"ip": "10.1.2.3"}),
            "while parsing context, expected the record to have an attribute `port`, but it does not",
        ),
        (
            json!({"ip": "10.1.2.3", "port": 22, "extra": 1}),
            "while parsing context, record attribute `extra` should not exist according to the schema",
        ),
        (
            json!({"ip": "not an address", "port": 22}),
            "error while evaluating `ipaddr` extension function: invalid IP address: not an address (help: valid IP strings are IPv4/IPv6 addresses or CIDR ranges like `127.0.0.1`, `127.0.0.1/24`, or `ffee::/64`)",
        ),
    ] {
        let why = connect(context.clone());
        assert_eq!(why, format!("{fit}{says}"), "{context}");
    }
}

#[test]
fn a_context_that_reads_as_an_escape_is_refused_as_cedars_reader_refuses_it() {
    // Without a schema nothing else would refuse it: a permit that reads
    // no context would allow, where Cedar's reader refuses the request.
    let p = Policies::load(
        r#"@id("any-read") permit (principal, action == Action::"read", resource);"#,
        None,
        300,
    )
    .expect("policies");
    let read = |context: Value| decide(&p, &alice(), "read", ("h1", json!({})), context, None);
    assert_eq!(read(json!({"note": "plain"})), allowed("any-read"));
    let fit = "the request's context does not fit: ";
    for (context, says) in [
        (
            json!({"__expr": "1 == 1"}),
            "while parsing context, the `__expr` escape is no longer supported (help: to create an entity reference, use `__entity`; to create an extension value, use `__extn`; and for all other values, use JSON directly)",
        ),
        (
            json!({"__entity": {"type": "User", "id": "alice"}}),
            "expression is not a record: User::\"alice\"",
        ),
        (
            json!({"__extn": {"fn": "ip", "arg": "10.0.0.1"}}),
            "expression is not a record: ip(\"10.0.0.1\")",
        ),
    ] {
        assert_eq!(
            read(context.clone()),
            Outcome::Invalid(format!("{fit}{says}")),
            "{context}"
        );
    }
    // With another member beside it, the reader takes the object as a
    // record (debug builds check this path agrees).
    assert_eq!(
        read(json!({"__entity": {"type": "User", "id": "alice"}, "note": "x"})),
        allowed("any-read")
    );
}

/// The schema's shortcut (`prebuilt`): a bare entity of a type whose
/// every bare entity conforms is taken unchecked, and only that one: a
/// bare resource of a type with a required attribute, or a bare resource
/// or host entity of an enumerated type under an id it does not list
/// (this one lists the id the load-time check uses), is still refused as
/// Cedar refuses it, however often the type was seen before.
#[test]
fn only_a_resource_that_conforms_by_its_type_skips_the_schema_check() {
    let schema = r#"
        entity User {
          sub: String, client_id: String, scopes: Set<String>, groups: Set<String>,
          roles: Set<String>, tenant: String, issuer: String,
        };
        entity Host;
        entity Zone enum ["eu", "greenlight-bare"];
        entity Vault { owner: String };
        action read appliesTo { principal: User, resource: [Host, Zone, Vault], context: {} };
    "#;
    let p = Policies::load(
        r#"@id("reads") permit (principal, action == Action::"read", resource);"#,
        Some(schema),
        300,
    )
    .expect("policies");
    let read_with = |kind: &str, id: &str, entities: &[EntityJson]| {
        p.decide(
            Query {
                principal: &alice(),
                home: HOME,
                action: "read",
                resource_type: kind,
                resource_id: id,
                resource_attrs: Map::new(),
                context: Map::new(),
                entities,
                principal_entity: None,
            },
            &SignIn {
                acr: None,
                auth_time: None,
                now: 0,
                exempt: false,
            },
        )
    };
    let read = |kind: &str, id: &str| read_with(kind, id, &[]);
    // A bare entity the host adds is held to the schema as the resource is.
    let zone = |id: &str| EntityJson {
        uid: Uid {
            kind: "Zone".into(),
            id: id.into(),
        },
        attrs: Map::new(),
        parents: Vec::new(),
    };
    for _ in 0..2 {
        assert_eq!(read_with("Host", "h1", &[zone("eu")]), allowed("reads"));
        assert_eq!(
            read_with("Host", "h1", &[zone("us")]),
            Outcome::Invalid(
                "the request's entities do not fit: entity does not conform to the schema (help: valid entity eids: \"eu\", \"greenlight-bare\"): entity `Zone::\"us\"` is of an enumerated entity type, but `\"us\"` is not declared as a valid eid".into()
            )
        );
        assert_eq!(read("Host", "h1"), allowed("reads"));
        assert_eq!(read("Zone", "eu"), allowed("reads"));
        assert_eq!(read("Zone", "us"), Outcome::Invalid(
                "the request's entities do not fit: entity does not conform to the schema (help: valid entity eids: \"eu\", \"greenlight-bare\"): entity `Zone::\"us\"` is of an enumerated entity type, but `\"us\"` is not declared as a valid eid".into()
            ));
        assert_eq!(read("Vault", "v1"), Outcome::Invalid(
                "the request's entities do not fit: entity does not conform to the schema: expected entity `Vault::\"v1\"` to have attribute `owner`, but it does not".into()
            ));
    }
}
