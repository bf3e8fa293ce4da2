//! Policy tests: requests a bundle carries with the verdicts its authors
//! expect (`tests/*.toml`), run by the engine itself so every host runs
//! them alike (`greenlight test`, and a host before it swaps in a bundle).
//!
//! ```toml
//! now = 1767225600                      # when the tests decide; defaults to the host's now
//!
//! [[tests]]
//! name = "a refund of 500 needs two finance approvals"
//! claims = { sub = "alice", scope = "payments:refund", client_id = "shop" }
//! http = { method = "POST", path = "/payments/p-1/refund", params = { amount = 500, currency = "EUR" } }
//! expect = { verdict = "approval-required", reasons = ["refund-large"],
//!            approvers = ["group:finance"], quorum = 2, grant = "once" }
//!
//! [[tests]]
//! name = "an AuthZEN-shaped request"
//! claims = { sub = "alice", scope = "payments:read" }
//! evaluation = { action = "payment.read", resource = { type = "Payment", id = "p-1" } }
//! expect = { verdict = "allow" }
//! ```
//!
//! `claims` describes an access token of `issuer` (default: the bundle's
//! first), with `iss`, `aud`, `iat` (= now) and `exp` (= now + 300) filled
//! in unless given, and `without = ["exp"]` leaving claims out. It is held
//! to every rule a signed token is (issuer, audience, time, claim types,
//! the claim mapping) but the signature: no key is involved, so nothing a
//! test describes can pass for a real token. Without `claims` the request
//! has no token. `expect` names the verdict and, optionally, what else must
//! hold exactly: a deny's `code` and `message`, the determining policies
//! (`reasons`, in any order), and an approval's `approvers`, `quorum`,
//! `grant` and `ttl`.

use greenlight_types::policytest::TESTS_DIR;
use greenlight_types::request::RequestFile;
use greenlight_types::{AccessRequest, Decision, Denial, HttpRequest, TestOutcome, Verdict};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::engine::Engine;
use crate::explain::Explanation;
use crate::token::{self, Verified};

/// One file of tests.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    #[serde(default)]
    now: Option<u64>,
    #[serde(default)]
    tests: Vec<TestCase>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestCase {
    name: String,
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default)]
    claims: Option<Map<String, Value>>,
    #[serde(default)]
    without: Vec<String>,
    #[serde(default)]
    http: Option<RequestFile>,
    #[serde(default)]
    evaluation: Option<Evaluation>,
    expect: Expect,
}

/// An AuthZEN-shaped request, minus the subject (the claims stand for it).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Evaluation {
    action: String,
    resource: Resource,
    #[serde(default)]
    context: Option<Map<String, Value>>,
    /// Entities the host adds (Cedar's entity JSON, a list).
    #[serde(default)]
    entities: Option<Value>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Resource {
    #[serde(rename = "type")]
    kind: String,
    id: String,
    #[serde(default)]
    properties: Option<Map<String, Value>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    verdict: String,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    reasons: Option<Vec<String>>,
    #[serde(default)]
    approvers: Option<Vec<String>>,
    #[serde(default)]
    quorum: Option<u32>,
    #[serde(default)]
    grant: Option<String>,
    #[serde(default)]
    ttl: Option<u64>,
}

const VERDICTS: [&str; 4] = ["allow", "deny", "approval-required", "step-up-required"];

impl Expect {
    /// An expectation the verdict cannot have, so that no test asks for
    /// less than it says: a `code` off a deny, a `message` off a deny or a
    /// step-up, an obligation off an approval.
    fn unfit(&self) -> Option<&'static str> {
        let v = self.verdict.as_str();
        [
            ("code", self.code.is_some() && v != "deny"),
            (
                "message",
                self.message.is_some() && v != "deny" && v != "step-up-required",
            ),
            (
                "approvers",
                self.approvers.is_some() && v != "approval-required",
            ),
            ("quorum", self.quorum.is_some() && v != "approval-required"),
            ("grant", self.grant.is_some() && v != "approval-required"),
            ("ttl", self.ttl.is_some() && v != "approval-required"),
        ]
        .into_iter()
        .find_map(|(field, unfit)| unfit.then_some(field))
    }
}

/// Parses test files given as `(file name, contents)`, in name order; an
/// error names the file and the test.
fn parse(files: &[(String, String)]) -> Result<Vec<(String, TestFile)>, String> {
    let mut sorted: Vec<&(String, String)> = files.iter().collect();
    sorted.sort();
    let mut parsed = Vec::new();
    for (name, text) in sorted {
        let file: TestFile = toml::from_str(text)
            .map_err(|e| format!("{TESTS_DIR}/{name} is not a test file: {e}"))?;
        for case in &file.tests {
            if case.http.is_some() == case.evaluation.is_some() {
                return Err(format!(
                    "{TESTS_DIR}/{name}: test `{}` needs exactly one of `http` and `evaluation`",
                    case.name
                ));
            }
            if !VERDICTS.contains(&case.expect.verdict.as_str()) {
                return Err(format!(
                    "{TESTS_DIR}/{name}: test `{}`: verdict `{}` is not one of {}",
                    case.name,
                    case.expect.verdict,
                    VERDICTS.join(", ")
                ));
            }
            if let Some(field) = case.expect.unfit() {
                return Err(format!(
                    "{TESTS_DIR}/{name}: test `{}`: `{field}` says nothing about the verdict `{}`",
                    case.name, case.expect.verdict
                ));
            }
        }
        parsed.push((name.clone(), file));
    }
    Ok(parsed)
}

impl Engine {
    /// Runs the policy tests in `files` (`(file name, contents)`, as in a
    /// bundle's `tests/` folder); a file without `now` decides at `now`.
    /// `Err` when a file is not a test file.
    pub fn run_tests(
        &self,
        files: &[(String, String)],
        now: u64,
    ) -> Result<Vec<TestOutcome>, String> {
        self.run_tests_reviewed(files, now, &|d, _| d)
    }

    /// [`Self::run_tests`] for a module that reviews every decision the
    /// core makes (`review(decision, now)`) before answering it: the
    /// tests see what the module answers.
    pub fn run_tests_reviewed(
        &self,
        files: &[(String, String)],
        now: u64,
        review: &dyn Fn(Decision, u64) -> Decision,
    ) -> Result<Vec<TestOutcome>, String> {
        let mut outcomes = Vec::new();
        for (file, tests) in parse(files)? {
            let now = tests.now.unwrap_or(now);
            for case in &tests.tests {
                let failure = match self.decide_test(case, now) {
                    Ok(d) => check(&case.expect, &review(d, now)).err(),
                    Err(why) => Some(format!("the test cannot run: {why}")),
                };
                outcomes.push(TestOutcome {
                    name: format!("{file}: {}", case.name),
                    failure,
                });
            }
        }
        Ok(outcomes)
    }

    /// Who a test's claims describe, checked at `now`.
    fn described(&self, case: &TestCase, now: u64) -> Result<Verified, Denial> {
        let mut claims = case.claims.clone().unwrap_or_default();
        let bundle = self.bundle();
        let issuer = match &case.issuer {
            Some(i) => bundle.issuers.iter().find(|b| &b.issuer == i),
            None => bundle.issuers.first(),
        };
        if let Some(issuer) = issuer {
            claims
                .entry("iss")
                .or_insert_with(|| Value::from(issuer.issuer.clone()));
            claims
                .entry("aud")
                .or_insert_with(|| Value::from(issuer.audience.clone()));
        }
        claims.entry("iat").or_insert_with(|| Value::from(now));
        claims
            .entry("exp")
            .or_insert_with(|| Value::from(now.saturating_add(300)));
        for k in &case.without {
            claims.remove(k);
        }
        let verified = token::described(
            &claims,
            &bundle.issuers,
            &bundle.config.principal,
            &bundle.attributes,
        )?;
        verified.check_time(now)?;
        Ok(verified)
    }

    /// A test's request, checked: the request and whether its claims
    /// stand for the token.
    fn plan(&self, case: &TestCase) -> Result<(Plan, bool), String> {
        if let Some(i) = &case.issuer
            && !self.bundle().issuers.iter().any(|b| &b.issuer == i)
        {
            return Err(format!("`{i}` is not one of the bundle's issuers"));
        }
        let described = case.claims.is_some();
        let plan = match (&case.http, &case.evaluation) {
            (Some(h), _) => {
                let req = h.clone().into_http(None);
                if described
                    && req
                        .headers
                        .iter()
                        .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
                {
                    return Err(
                        "a test that describes `claims` sends no `authorization` header".to_owned(),
                    );
                }
                Plan::Http(req)
            }
            // With claims only whether there is a token matters: the
            // description answers for it.
            (None, Some(e)) => Plan::Access(access_request(
                e,
                if described { "described" } else { "" }.to_owned(),
            )),
            (None, None) => return Err("the test has no request".to_owned()),
        };
        Ok((plan, described))
    }

    fn decide_test(&self, case: &TestCase, now: u64) -> Result<Decision, String> {
        let who = || self.described(case, now);
        Ok(match self.plan(case)? {
            // No description: the request as it is, through every rule.
            (Plan::Http(req), false) => self.evaluate_http(&req, now),
            (Plan::Access(req), false) => self.evaluate(&req, now),
            (Plan::Http(req), true) => self.evaluate_http_by(&req, now, &|_| who()),
            (Plan::Access(req), true) => self.evaluate_by(&req, now, &|_| who()),
        })
    }

    /// Explains the decision of the test named `name` (`FILE: NAME` as
    /// `run_tests` names it, or its name alone when no other test has
    /// it) in `files`, at its file's `now` or else at `now`.
    pub fn explain_test(
        &self,
        files: &[(String, String)],
        name: &str,
        now: u64,
    ) -> Result<Explanation, String> {
        let parsed = parse(files)?;
        let found: Vec<(u64, &TestCase)> = parsed
            .iter()
            .flat_map(|(file, tests)| {
                tests
                    .tests
                    .iter()
                    .filter(move |c| c.name == name || format!("{file}: {}", c.name) == name)
                    .map(move |c| (tests.now.unwrap_or(now), c))
            })
            .collect();
        let (now, case) = match found.as_slice() {
            [one] => *one,
            [] => return Err(format!("no test is named `{name}`")),
            _ => {
                return Err(format!(
                    "{} tests are named `{name}`: name one as `FILE: NAME`",
                    found.len()
                ));
            }
        };
        let who = || self.described(case, now);
        Ok(match self.plan(case)? {
            (Plan::Http(req), false) => self.explain_http(&req, now),
            (Plan::Access(req), false) => self.explain(&req, now),
            (Plan::Http(req), true) => self.explain_http_by(&req, now, &|_| who()),
            (Plan::Access(req), true) => self.explain_by(&req, now, &|_| who()),
        })
    }
}

/// A test's request.
enum Plan {
    Http(HttpRequest),
    Access(AccessRequest),
}

fn access_request(e: &Evaluation, token: String) -> AccessRequest {
    AccessRequest {
        token,
        action: e.action.clone(),
        resource_type: e.resource.kind.clone(),
        resource_id: e.resource.id.clone(),
        resource_properties: e
            .resource
            .properties
            .as_ref()
            .map(|p| Value::Object(p.clone()).to_string()),
        context: e
            .context
            .as_ref()
            .map(|c| Value::Object(c.clone()).to_string()),
        entities: e.entities.as_ref().map(Value::to_string),
    }
}

/// The decision in a line: its verdict, what it carries, and the policies
/// that determined it.
pub fn describe(d: &Decision) -> String {
    let by = if d.reasons.is_empty() {
        "no policy".to_owned()
    } else {
        d.reasons.join(", ")
    };
    let what = match &d.verdict {
        Verdict::Allow(_) => "allow".to_owned(),
        Verdict::Deny(x) => format!("deny {}: {}", x.code, x.message),
        Verdict::ApprovalRequired(c) => {
            let o = &c.obligation;
            format!(
                "approval-required: approvers {}, quorum {}, grant {}, ttl {}",
                o.approvers
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" "),
                o.quorum,
                o.grant.as_str(),
                o.ttl_seconds
            )
        }
        Verdict::StepUpRequired(s) => format!("step-up-required: {}", s.message),
    };
    format!("{what} (determined by {by})")
}

/// `Ok` when `d` is what `expect` says; otherwise what differs.
fn check(expect: &Expect, d: &Decision) -> Result<(), String> {
    let mut wrong = Vec::new();
    let kind = match &d.verdict {
        Verdict::Allow(_) => "allow",
        Verdict::Deny(_) => "deny",
        Verdict::ApprovalRequired(_) => "approval-required",
        Verdict::StepUpRequired(_) => "step-up-required",
    };
    if kind != expect.verdict {
        wrong.push(format!("expected {}", expect.verdict));
    }
    if let Some(want) = &expect.reasons {
        let mut want = want.clone();
        want.sort();
        let mut got = d.reasons.clone();
        got.sort();
        if want != got {
            wrong.push(format!("expected reasons [{}]", want.join(", ")));
        }
    }
    let message = match &d.verdict {
        Verdict::Deny(x) => {
            if let Some(c) = expect.code.as_deref().filter(|c| *c != x.code.as_str()) {
                wrong.push(format!("expected code {c}"));
            }
            Some(x.message.as_str())
        }
        Verdict::StepUpRequired(s) => Some(s.message.as_str()),
        Verdict::ApprovalRequired(c) => {
            let o = &c.obligation;
            if let Some(want) = &expect.approvers {
                let got: Vec<String> = o.approvers.iter().map(ToString::to_string).collect();
                if &got != want {
                    wrong.push(format!("expected approvers {}", want.join(" ")));
                }
            }
            if let Some(q) = expect.quorum.filter(|q| *q != o.quorum) {
                wrong.push(format!("expected quorum {q}"));
            }
            if let Some(g) = expect.grant.as_deref().filter(|g| *g != o.grant.as_str()) {
                wrong.push(format!("expected grant {g}"));
            }
            if let Some(t) = expect.ttl.filter(|t| *t != o.ttl_seconds) {
                wrong.push(format!("expected ttl {t}"));
            }
            None
        }
        Verdict::Allow(_) => None,
    };
    if let (Some(want), Some(got)) = (&expect.message, message)
        && want != got
    {
        wrong.push(format!("expected message `{want}`"));
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!("{}; got {}", wrong.join(", "), describe(d)))
    }
}
