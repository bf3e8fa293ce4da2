//! `explain` on a bundle built for it: several conditions to a policy,
//! `unless`, a forbid that cannot be evaluated (and so counts), a request
//! stopped before the policies, and tests chosen by name or `FILE: NAME`.

use std::path::Path;

use greenlight_core::Engine;
use greenlight_core::explain::render;

const CONFIG: &str = r#"
[[issuers]]
issuer = "https://idp.example.com"
audience = "https://api.example.com"
algorithms = ["EdDSA"]
jwks = "idp.jwks.json"
"#;

const POLICY: &str = r#"
@id("read-open")
permit (principal, action == Action::"read", resource)
when { principal.scopes.contains("docs:read") }
when { resource.open == true };

@id("owner-reads")
@approvers("user:boss") @ttl("60")
permit (principal, action == Action::"read", resource)
when { resource has owner && resource.owner == principal.sub }
unless { principal.roles.contains("suspended") };

// No `archived` in the request: Greenlight counts the forbid.
@id("no-archived")
forbid (principal, action == Action::"read", resource)
unless { resource.archived == false };
"#;

const TESTS_A: &str = r#"
now = 1767225600

[[tests]]
name = "an open document"
claims = { sub = "alice", scope = "docs:read" }
evaluation = { action = "read", resource = { type = "Doc", id = "d1", properties = { open = true, archived = false } } }
expect = { verdict = "allow" }

[[tests]]
name = "same"
claims = { sub = "alice", scope = "docs:read" }
evaluation = { action = "read", resource = { type = "Doc", id = "d2", properties = { open = true } } }
expect = { verdict = "deny" }
"#;

const TESTS_B: &str = r#"
now = 1767225600

[[tests]]
name = "same"
claims = { sub = "alice", roles = ["suspended"] }
evaluation = { action = "read", resource = { type = "Doc", id = "d3", properties = { owner = "alice", archived = false } } }
expect = { verdict = "deny" }

[[tests]]
name = "her own document"
claims = { sub = "alice" }
evaluation = { action = "read", resource = { type = "Doc", id = "d4", properties = { owner = "alice", archived = false } } }
expect = { verdict = "approval-required" }
"#;

fn engine() -> Engine {
    let jwks = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/bundle/idp.jwks.json"),
    )
    .expect("jwks");
    Engine::load(&[
        ("greenlight.toml".to_owned(), CONFIG.to_owned()),
        ("policy.cedar".to_owned(), POLICY.to_owned()),
        ("idp.jwks.json".to_owned(), jwks),
    ])
    .expect("bundle")
}

fn tests() -> Vec<(String, String)> {
    vec![
        ("a.toml".to_owned(), TESTS_A.to_owned()),
        ("b.toml".to_owned(), TESTS_B.to_owned()),
    ]
}

fn explained(name: &str) -> String {
    render(&engine().explain_test(&tests(), name, 0).expect("explained"))
}

#[test]
fn every_condition_is_shown_and_an_unevaluable_forbid_counts() {
    assert_eq!(explained("an open document"), EXPLAINED_OPEN);
    assert_eq!(explained("a.toml: same"), EXPLAINED_UNKNOWN_ARCHIVED);
    assert_eq!(explained("b.toml: same"), EXPLAINED_SUSPENDED);
    assert_eq!(explained("her own document"), EXPLAINED_OWN);
}

#[test]
fn a_test_name_must_name_one_test() {
    let e = engine();
    assert_eq!(
        e.explain_test(&tests(), "same", 0).err().as_deref(),
        Some("2 tests are named `same`: name one as `FILE: NAME`")
    );
    assert_eq!(
        e.explain_test(&tests(), "none", 0).err().as_deref(),
        Some("no test is named `none`")
    );
}

/// An action token used for another action is refused before any policy.
#[test]
fn a_request_refused_before_the_policies_says_so() {
    let e = engine();
    let token = "not-a-token";
    let x = e.explain(
        &greenlight_core::AccessRequest {
            token: token.to_owned(),
            action: "read".to_owned(),
            resource_type: "Doc".to_owned(),
            resource_id: "d1".to_owned(),
            ..Default::default()
        },
        1_767_225_600,
    );
    assert_eq!(x.asked, None);
    assert_eq!(
        x.policies,
        Err("the request was refused before them".to_owned())
    );
    assert!(
        render(&x).ends_with("\n\nno policy was evaluated: the request was refused before them\n"),
        "{}",
        render(&x)
    );
}

const EXPLAINED_OPEN: &str = r#"request:  User::"alice" asks Action::"read" on Doc::"d1"
decision: allow (by read-open)

forbid `no-archived`: not satisfied
  scope: matches
  unless { resource.archived == false }: true: FAILS

permit `owner-reads`: not satisfied
  @approvers("user:boss")
  @ttl("60")
  scope: matches
  when { resource has owner && resource.owner == principal.sub }: false: FAILS
  unless { principal.roles.contains("suspended") }: false

permit `read-open`: satisfied, determines the decision
  scope: matches
  when { principal.scopes.contains("docs:read") }: true
  when { resource.open == true }: true
"#;
const EXPLAINED_UNKNOWN_ARCHIVED: &str = r#"request:  User::"alice" asks Action::"read" on Doc::"d2"
decision: deny policy-forbidden: `read` on `Doc::d2` is forbidden by policy `no-archived` (by no-archived)

forbid `no-archived`: cannot be evaluated, so counts as satisfied and determines the decision: error while evaluating policy `no-archived`: `Doc::"d2"` does not have the attribute `archived`
  scope: matches
  unless { resource.archived == false }: cannot be evaluated: error while evaluating policy `no-archived`: `Doc::"d2"` does not have the attribute `archived`

permit `owner-reads`: not satisfied
  @approvers("user:boss")
  @ttl("60")
  scope: matches
  when { resource has owner && resource.owner == principal.sub }: false: FAILS
  unless { principal.roles.contains("suspended") }: false

permit `read-open`: satisfied, but does not determine the decision
  scope: matches
  when { principal.scopes.contains("docs:read") }: true
  when { resource.open == true }: true
"#;
const EXPLAINED_SUSPENDED: &str = r#"request:  User::"alice" asks Action::"read" on Doc::"d3"
decision: deny policy-no-permit: no policy permits `read` on `Doc::d3`

forbid `no-archived`: not satisfied
  scope: matches
  unless { resource.archived == false }: true: FAILS

permit `owner-reads`: not satisfied
  @approvers("user:boss")
  @ttl("60")
  scope: matches
  when { resource has owner && resource.owner == principal.sub }: true
  unless { principal.roles.contains("suspended") }: true: FAILS

permit `read-open`: not satisfied
  scope: matches
  when { principal.scopes.contains("docs:read") }: false: FAILS
  when { resource.open == true }: cannot be evaluated: error while evaluating policy `read-open`: `Doc::"d3"` does not have the attribute `open`
"#;
const EXPLAINED_OWN: &str = r#"request:  User::"alice" asks Action::"read" on Doc::"d4"
decision: approval-required: 1 of user:boss, grant once, ttl 60 s (by owner-reads)

forbid `no-archived`: not satisfied
  scope: matches
  unless { resource.archived == false }: true: FAILS

permit `owner-reads`: satisfied, determines the decision
  @approvers("user:boss")
  @ttl("60")
  scope: matches
  when { resource has owner && resource.owner == principal.sub }: true
  unless { principal.roles.contains("suspended") }: false

permit `read-open`: not satisfied
  scope: matches
  when { principal.scopes.contains("docs:read") }: false: FAILS
  when { resource.open == true }: cannot be evaluated: error while evaluating policy `read-open`: `Doc::"d4"` does not have the attribute `open`

the approval asked for is `owner-reads`'s: @approvers("user:boss") @ttl("60")
"#;
