//! `[principal.attributes]` and sign-in requirements as a bundle is
//! loaded: every mistake refused with its place and a message a person can
//! act on, the mapping checked against the schema; and what a host may
//! vouch for. (The verdicts on tokens are pinned by the vectors
//! `claims-*`, `step-up-*` and `delegation-*` in every host.)

use std::collections::BTreeMap;

use greenlight_core::{
    AccessRequest, AttributeValue, Engine, LoadError, Principal, Problem, ProblemKind, Verdict,
};

const JWKS: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"I2AjEqUYOqUP6_eOvTM6THsPlfCVJVszMQh_05UWsT4","kid":"k1","alg":"EdDSA"}]}"#;

const ISSUER: &str = r#"[[issuers]]
issuer = "https://idp.example.com"
audience = "https://api.example.com"
algorithms = ["EdDSA"]
jwks = "idp.jwks.json"
"#;

const POLICY: &str = r#"@id("read")
permit (principal, action == Action::"doc.read", resource);
"#;

const SCHEMA: &str = r#"entity User {
  sub: String, client_id: String, scopes: Set<String>, groups: Set<String>,
  roles: Set<String>, tenant: String, issuer: String,
  department: String,
  level?: Long,
};
entity Doc;
action "doc.read" appliesTo { principal: User, resource: Doc, context: {} };
"#;

fn load(config: &str, policy: &str, schema: Option<&str>) -> Result<Engine, LoadError> {
    let mut files = vec![
        ("greenlight.toml".to_owned(), format!("{ISSUER}{config}")),
        ("policy.cedar".to_owned(), policy.to_owned()),
        ("idp.jwks.json".to_owned(), JWKS.to_owned()),
    ];
    if let Some(s) = schema {
        files.push(("schema.cedarschema".to_owned(), s.to_owned()));
    }
    Engine::load(&files)
}

fn problems(config: &str, policy: &str, schema: Option<&str>) -> Vec<Problem> {
    match load(config, policy, schema) {
        Err(LoadError::InvalidBundle(p)) => p,
        Err(other) => panic!("expected InvalidBundle, got {other:?}"),
        Ok(_) => panic!("the bundle loaded"),
    }
}

/// The one problem of a bundle: its kind, line and message.
fn one(
    config: &str,
    policy: &str,
    schema: Option<&str>,
) -> (ProblemKind, String, Option<u32>, String) {
    let p = problems(config, policy, schema);
    assert_eq!(p.len(), 1, "{p:?}");
    let p = p.into_iter().next().expect("one");
    (p.kind, p.file, p.line, p.message)
}

fn config_problem(line: u32, message: &str) -> (ProblemKind, String, Option<u32>, String) {
    (
        ProblemKind::InvalidConfig,
        "greenlight.toml".to_owned(),
        Some(line),
        message.to_owned(),
    )
}

#[test]
fn a_mapping_that_takes_a_built_in_name_is_refused() {
    assert_eq!(
        one(
            "[principal.attributes.groups]\nclaim = \"g\"\ntype = \"Set<String>\"\n",
            POLICY,
            None
        ),
        config_problem(
            6,
            "attribute `groups` is built in; its claim is set in `[principal]`"
        )
    );
}

#[test]
fn a_mapping_names_its_claim_once() {
    assert_eq!(
        one(
            "[principal.attributes.d]\nclaim = \"d\"\npath = \"a.d\"\ntype = \"String\"\n",
            POLICY,
            None
        ),
        config_problem(6, "attribute `d`: give `claim` or `path`, not both")
    );
    assert_eq!(
        one(
            "[principal.attributes.d]\ntype = \"String\"\n",
            POLICY,
            None
        ),
        config_problem(
            6,
            "attribute `d`: give the `claim` (a top-level claim's exact name) or the `path` (a JSON pointer or dotted path) it is read from"
        )
    );
    assert_eq!(
        one(
            "[principal.attributes.d]\npath = \"a..d\"\ntype = \"String\"\n",
            POLICY,
            None
        ),
        config_problem(6, "attribute `d`: path `a..d` has an empty segment")
    );
    assert_eq!(
        one(
            "[principal.attributes.d]\npath = \"/a//d\"\ntype = \"String\"\n",
            POLICY,
            None
        ),
        config_problem(
            6,
            "attribute `d`: JSON pointer `/a//d` has an empty segment"
        )
    );
}

#[test]
fn a_mapping_has_a_cedar_type_and_a_default_of_it() {
    assert_eq!(
        one(
            "[principal.attributes.d]\nclaim = \"d\"\ntype = \"Set<Long>\"\n",
            POLICY,
            None
        ),
        config_problem(
            6,
            "attribute `d`: type `Set<Long>` should be `String`, `Long`, `Bool`, `Set<String>` or `datetime`"
        )
    );
    assert_eq!(
        one(
            "[principal.attributes.d]\nclaim = \"d\"\ntype = \"Long\"\ndefault = \"3\"\n",
            POLICY,
            None
        ),
        config_problem(6, "attribute `d`: the default `\"3\"` is not a Long")
    );
    assert_eq!(
        one(
            "[principal.attributes.d]\nclaim = \"d\"\ntype = \"Set<String>\"\ndefault = [\"a\", 1]\n",
            POLICY,
            None
        ),
        config_problem(
            6,
            "attribute `d`: the default `[\"a\", 1]` is not a Set<String>"
        )
    );
    assert_eq!(
        one(
            "[principal.attributes.d]\nclaim = \"d\"\ntype = \"String\"\nrequired = true\ndefault = \"x\"\n",
            POLICY,
            None
        ),
        config_problem(
            6,
            "attribute `d` is required, so a default would never be used"
        )
    );
}

#[test]
fn an_attribute_name_is_a_cedar_identifier() {
    assert_eq!(
        one(
            "[principal.attributes.\"dept-name\"]\nclaim = \"d\"\ntype = \"String\"\n",
            POLICY,
            None
        ),
        config_problem(
            6,
            "attribute `dept-name` should be a Cedar identifier (letters, digits and `_`, not starting with a digit)"
        )
    );
}

#[test]
fn bundle_validate_checks_the_mapping_against_the_schema() {
    let fits = "[principal.attributes.department]\nclaim = \"https://example.com/department\"\ntype = \"String\"\nrequired = true\n\
                [principal.attributes.level]\npath = \"profile.level\"\ntype = \"Long\"\n";
    assert!(load(fits, POLICY, Some(SCHEMA)).is_ok());

    // The schema says Long; the mapping String.
    let wrong_type =
        "[principal.attributes.department]\nclaim = \"d\"\ntype = \"Long\"\nrequired = true\n";
    let (kind, file, line, message) = one(wrong_type, POLICY, Some(SCHEMA));
    assert_eq!(
        (kind, file.as_str(), line),
        (ProblemKind::InvalidSchema, "greenlight.toml", Some(6))
    );
    assert!(
        message.starts_with("the principal with its mapped attributes does not fit the schema: ")
            && message.contains("department"),
        "{message}"
    );

    // An attribute the schema does not declare.
    let undeclared = "[principal.attributes.department]\nclaim = \"d\"\ntype = \"String\"\nrequired = true\n\
                      [principal.attributes.email]\nclaim = \"email\"\ntype = \"String\"\n";
    let (kind, _, _, message) = one(undeclared, POLICY, Some(SCHEMA));
    assert_eq!(kind, ProblemKind::InvalidSchema);
    assert!(message.contains("email"), "{message}");

    // A token may lack it, but the schema requires it.
    let optional = "[principal.attributes.department]\nclaim = \"d\"\ntype = \"String\"\n";
    assert_eq!(
        one(optional, POLICY, Some(SCHEMA)),
        (
            ProblemKind::InvalidSchema,
            "greenlight.toml".to_owned(),
            Some(6),
            "attribute `department` is absent when a token lacks `d` (it is not required and has no default), but the schema requires it: declare `department?: String`, or make it required, or give a default".to_owned()
        )
    );
    // A default makes it always present: the schema's requirement holds.
    let defaulted =
        "[principal.attributes.department]\nclaim = \"d\"\ntype = \"String\"\ndefault = \"none\"\n";
    assert!(load(defaulted, POLICY, Some(SCHEMA)).is_ok());
}

#[test]
fn a_sign_in_requirement_is_well_formed_and_on_a_permit() {
    let at = |policy: &str| {
        let p = problems("", policy, None);
        p.into_iter()
            .map(|p| (p.kind, p.line, p.message))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        at("@id(\"x\")\n@acr(\"mfa\")\nforbid (principal, action, resource);\n"),
        vec![(
            ProblemKind::InvalidPolicy,
            Some(2),
            "policy `x` is a forbid: sign-in requirements only belong on permits".to_owned()
        )]
    );
    assert_eq!(
        at("@id(\"x\")\n@max_age(\"0\")\npermit (principal, action, resource);\n"),
        vec![(
            ProblemKind::InvalidPolicy,
            Some(2),
            "policy `x`: `@max_age(\"0\")` should be a positive number of seconds".to_owned()
        )]
    );
    assert_eq!(
        at("@id(\"x\")\n@acr(\"  \")\npermit (principal, action, resource);\n"),
        vec![(
            ProblemKind::InvalidPolicy,
            Some(2),
            "policy `x`: `@acr` names no class".to_owned()
        )]
    );
}

fn vouched(attributes: BTreeMap<String, AttributeValue>) -> Verdict {
    let engine = load(
        "[principal.attributes.department]\nclaim = \"d\"\ntype = \"String\"\nrequired = true\n\
         [principal.attributes.level]\npath = \"profile.level\"\ntype = \"Long\"\ndefault = 1\n",
        "@id(\"read\")\npermit (principal, action == Action::\"doc.read\", resource)\n\
         when { principal.department == \"finance\" && principal.level == 1 };\n",
        None,
    )
    .expect("the bundle loads");
    let who = Principal {
        entity_type: "User".into(),
        subject: "bob".into(),
        issuer: "https://idp.example.com".into(),
        attributes,
        ..Principal::default()
    };
    engine
        .evaluate_as(
            &who,
            &AccessRequest {
                action: "doc.read".into(),
                resource_type: "Doc".into(),
                resource_id: "d-1".into(),
                ..AccessRequest::default()
            },
            0,
        )
        .verdict
}

fn denied(v: Verdict) -> (String, String) {
    match v {
        Verdict::Deny(d) => (d.code.as_str().to_owned(), d.message),
        other => panic!("expected a deny, got {other:?}"),
    }
}

#[test]
fn a_vouched_subject_gives_mapped_attributes_of_their_types() {
    let dept = |v: AttributeValue| BTreeMap::from([("department".to_owned(), v)]);
    // The default fills `level`.
    match vouched(dept(AttributeValue::String("finance".into()))) {
        Verdict::Allow(a) => assert_eq!(
            a.principal.attributes,
            BTreeMap::from([
                (
                    "department".to_owned(),
                    AttributeValue::String("finance".into())
                ),
                ("level".to_owned(), AttributeValue::Long(1)),
            ])
        ),
        other => panic!("expected an allow, got {other:?}"),
    }
    assert_eq!(
        denied(vouched(dept(AttributeValue::Long(3)))),
        (
            "request-invalid".to_owned(),
            "the vouched subject's attribute `department` is a Long, not a String".to_owned()
        )
    );
    assert_eq!(
        denied(vouched(BTreeMap::new())),
        (
            "request-invalid".to_owned(),
            "the vouched subject lacks the required attribute `department`".to_owned()
        )
    );
    let mut extra = dept(AttributeValue::String("finance".into()));
    extra.insert("admin".to_owned(), AttributeValue::Bool(true));
    assert_eq!(
        denied(vouched(extra)),
        (
            "request-invalid".to_owned(),
            "the vouched subject's attribute `admin` is not one the bundle maps".to_owned()
        )
    );
}

/// An error never lifts a prohibition: without a schema, a forbid that
/// reads an attribute the subject lacks counts as satisfied.
#[test]
fn a_forbid_that_cannot_be_evaluated_denies() {
    let engine = load(
        "[principal.attributes.level]\nclaim = \"level\"\ntype = \"Long\"\n",
        "@id(\"read\")\npermit (principal, action == Action::\"doc.read\", resource);\n\
         @id(\"low-level\")\nforbid (principal, action, resource) when { principal.level < 2 };\n",
        None,
    )
    .expect("the bundle loads");
    let decide = |attributes: BTreeMap<String, AttributeValue>| {
        let who = Principal {
            entity_type: "User".into(),
            subject: "bob".into(),
            issuer: "https://idp.example.com".into(),
            attributes,
            ..Principal::default()
        };
        let d = engine.evaluate_as(
            &who,
            &AccessRequest {
                action: "doc.read".into(),
                resource_type: "Doc".into(),
                resource_id: "d-1".into(),
                ..AccessRequest::default()
            },
            0,
        );
        (d.verdict, d.reasons)
    };
    let level = |n| BTreeMap::from([("level".to_owned(), AttributeValue::Long(n))]);
    assert!(matches!(decide(level(5)).0, Verdict::Allow(_)));
    let (verdict, reasons) = decide(level(1));
    assert_eq!(
        (denied(verdict), reasons),
        (
            (
                "policy-forbidden".to_owned(),
                "`doc.read` on `Doc::d-1` is forbidden by policy `low-level`".to_owned()
            ),
            vec!["low-level".to_owned()]
        )
    );
    // No `level` at all: the forbid errs, and still forbids.
    let (verdict, reasons) = decide(BTreeMap::new());
    assert_eq!(
        (denied(verdict), reasons),
        (
            (
                "policy-forbidden".to_owned(),
                "`doc.read` on `Doc::d-1` is forbidden by policy `low-level`".to_owned()
            ),
            vec!["low-level".to_owned()]
        )
    );
}

#[test]
fn an_attribute_trusts_named_issuers_of_the_bundle() {
    assert_eq!(
        one(
            "[principal.attributes.d]\nclaim = \"d\"\ntype = \"String\"\nissuers = [\"https://other.example\"]\n",
            POLICY,
            None
        ),
        config_problem(
            6,
            "attribute `d`: `https://other.example` in `issuers` is not one of the bundle's issuers"
        )
    );
}

#[test]
fn a_vouched_subject_of_another_issuer_gives_no_first_issuer_attribute() {
    let engine = load(
        "[principal.attributes.department]\nclaim = \"d\"\ntype = \"String\"\n\
         [principal.attributes.team]\nclaim = \"t\"\ntype = \"String\"\nissuers = [\"*\"]\n\
         [[issuers]]\nissuer = \"https://partner.example\"\naudience = \"https://api.example.com\"\n\
         algorithms = [\"EdDSA\"]\njwks = \"idp.jwks.json\"\n",
        POLICY,
        None,
    )
    .expect("the bundle loads");
    let decide = |issuer: &str, attributes: BTreeMap<String, AttributeValue>| {
        let who = Principal {
            entity_type: "User".into(),
            subject: "bob".into(),
            issuer: issuer.into(),
            attributes,
            ..Principal::default()
        };
        engine
            .evaluate_as(
                &who,
                &AccessRequest {
                    action: "doc.read".into(),
                    resource_type: "Doc".into(),
                    resource_id: "d-1".into(),
                    ..AccessRequest::default()
                },
                0,
            )
            .verdict
    };
    let dept = BTreeMap::from([(
        "department".to_owned(),
        AttributeValue::String("finance".into()),
    )]);
    assert!(matches!(
        decide("https://idp.example.com", dept.clone()),
        Verdict::Allow(_)
    ));
    assert_eq!(
        denied(decide("https://partner.example", dept)),
        (
            "request-invalid".to_owned(),
            "the vouched subject's attribute `department` is not read from `https://partner.example`"
                .to_owned()
        )
    );
    let team = BTreeMap::from([("team".to_owned(), AttributeValue::String("ops".into()))]);
    assert!(matches!(
        decide("https://partner.example", team),
        Verdict::Allow(_)
    ));
}
