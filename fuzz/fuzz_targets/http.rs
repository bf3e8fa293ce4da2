//! HTTP decisions: route matching, parameter reading and typing, and the
//! decision on the demo bundle (examples/bundle), loaded once.
//!
//! Input: either a request as JSON (`HttpRequest`, the form the
//! conformance vectors hold, decided at their `now`: the seeds are the
//! vectors' requests), or else structured (`arbitrary`): a method, a path
//! (a route's template with fuzzed variables, or any text), a query, the
//! `authorization` header (a token from the conformance vectors, any text,
//! none, or two), more headers, a JSON body (built from fuzzed values, with
//! the names the routes read, or any text) and a `now` up to 18 hours past
//! the vectors'.
//!
//! Invariants:
//! - evaluating never panics, and evaluating again (the token now from the
//!   engine's cache) gives the same decision, with the bundle's hash;
//! - an allow or an approval-required decision came from the first route
//!   whose method and template match the path, as read here independently
//!   (segments compared one by one, `%XX` escapes of two hex digits
//!   decoded, a variable never empty): its action and resource type, its
//!   resource id filled from those variables, none of which holds a `/`
//!   unless the route allows encoded slashes, and exactly the bound
//!   parameters read here from the path, query, headers and body with the
//!   route's types (a scalar given twice, a missing required one, a wrong
//!   type or an integer beyond ±2^53 is never decided on); its digest
//!   matches; it was presented with one `authorization` header, scheme
//!   Bearer, carrying one of the vectors' tokens (no other text verifies);
//! - a `route-not-found` denial means no route matches, as read here;
//! - the demo's policies hold (examples/bundle/policy.cedar, by policy id):
//!   `payment-read` and `refund-small` allow only with their scopes, a
//!   small refund is of 1 to 100, `refund-large` asks approval only for
//!   101 to 10000, `file-write-confirm` only for the subject's own files,
//!   `tenant-data-delete` only for a tenant admin of the same tenant. The
//!   demo bundle has no action-token keys, so no approval is ever skipped.

#![no_main]

use std::collections::BTreeMap;
use std::sync::LazyLock;

use arbitrary::{Arbitrary, Unstructured};
use greenlight_core::config::RouteConfig;
use greenlight_core::{Action, Decision, DenialCode, Engine, HttpRequest, Principal, Verdict};
use greenlight_fuzz::{NOW, demo_bundle, demo_tokens};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

static ENGINE: LazyLock<Engine> =
    LazyLock::new(|| Engine::load(&demo_bundle()).expect("the demo bundle loads"));
static TOKENS: LazyLock<Vec<&'static str>> = LazyLock::new(demo_tokens);

/// The names the routes read from the body, query and headers, for the
/// fuzzer to use more often than chance would.
static NAMES: LazyLock<Vec<String>> = LazyLock::new(|| {
    let mut names: Vec<String> = routes()
        .iter()
        .flat_map(|r| r.params.values())
        .filter_map(|p| p.from.split_once('.'))
        .filter(|(kind, _)| *kind != "path")
        .flat_map(|(_, rest)| rest.split('.').map(str::to_owned))
        .collect();
    names.sort();
    names.dedup();
    names.push("authorization".to_owned());
    names
});

fn routes() -> &'static [RouteConfig] {
    &ENGINE.bundle().config.routes
}

fn pick<T>(items: &[T], i: u8) -> Option<&T> {
    (!items.is_empty()).then(|| &items[usize::from(i) % items.len()])
}

#[derive(Arbitrary, Debug)]
enum Method {
    Get,
    Post,
    Put,
    Delete,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum PathInput {
    /// A route's template with its variables replaced, in order.
    Route {
        route: u8,
        vars: Vec<String>,
    },
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Auth {
    Token(u8),
    Raw(String),
    /// A scheme and a token from the list.
    Scheme(String, u8),
    Twice(u8, u8),
    Absent,
}

#[derive(Arbitrary, Debug)]
enum Name {
    Known(u8),
    Other(String),
}

impl Name {
    fn text(&self) -> String {
        match self {
            Name::Known(i) => pick(&NAMES, *i).cloned().unwrap_or_default(),
            Name::Other(s) => s.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum J {
    Null,
    Bool(bool),
    Int(i64),
    Big(u64),
    Float(f64),
    Str(String),
    Array(Vec<J>),
    Object(Vec<(Name, J)>),
}

impl J {
    fn value(&self) -> Value {
        match self {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(*b),
            J::Int(i) => Value::from(*i),
            J::Big(u) => Value::from(*u),
            J::Float(f) => Value::from(*f),
            J::Str(s) => Value::String(s.clone()),
            J::Array(items) => Value::Array(items.iter().map(J::value).collect()),
            J::Object(members) => {
                Value::Object(members.iter().map(|(n, v)| (n.text(), v.value())).collect())
            }
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Body {
    Absent,
    Json(Vec<(Name, J)>),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Query {
    Pairs(Vec<(Name, String)>),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
struct Input {
    method: Method,
    path: PathInput,
    query: Query,
    auth: Auth,
    headers: Vec<(Name, String)>,
    body: Body,
    later: u16,
}

fn token(i: u8) -> String {
    pick(&TOKENS, i)
        .map(|t| (*t).to_owned())
        .unwrap_or_default()
}

impl Input {
    fn request(&self) -> HttpRequest {
        let method = match &self.method {
            Method::Get => "GET".to_owned(),
            Method::Post => "POST".to_owned(),
            Method::Put => "PUT".to_owned(),
            Method::Delete => "DELETE".to_owned(),
            Method::Other(m) => m.clone(),
        };
        let path = match &self.path {
            PathInput::Raw(p) => p.clone(),
            PathInput::Route { route, vars } => {
                let template = pick(routes(), *route).map_or("/", |r| r.path.as_str());
                let mut vars = vars.iter();
                template
                    .split('/')
                    .map(|seg| {
                        if seg.starts_with('{') {
                            vars.next().cloned().unwrap_or_default()
                        } else {
                            seg.to_owned()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("/")
            }
        };
        let query = match &self.query {
            Query::Raw(q) => q.clone(),
            Query::Pairs(pairs) => pairs
                .iter()
                .map(|(k, v)| format!("{}={v}", k.text()))
                .collect::<Vec<_>>()
                .join("&"),
        };
        let mut headers = Vec::new();
        let auth = |value: String| ("authorization".to_owned(), value);
        match &self.auth {
            Auth::Token(i) => headers.push(auth(format!("Bearer {}", token(*i)))),
            Auth::Raw(v) => headers.push(auth(v.clone())),
            Auth::Scheme(s, i) => headers.push(auth(format!("{s} {}", token(*i)))),
            Auth::Twice(a, b) => {
                headers.push(auth(format!("Bearer {}", token(*a))));
                headers.push(auth(format!("Bearer {}", token(*b))));
            }
            Auth::Absent => {}
        }
        headers.extend(self.headers.iter().map(|(n, v)| (n.text(), v.clone())));
        let params = match &self.body {
            Body::Absent => None,
            Body::Raw(t) => Some(t.clone()),
            Body::Json(members) => Some(
                Value::Object(members.iter().map(|(n, v)| (n.text(), v.value())).collect())
                    .to_string(),
            ),
        };
        HttpRequest {
            method,
            path,
            query,
            headers,
            params,
            entities: None,
        }
    }
}

// ---- The oracle: routes and parameters read again, from their rules. ----

/// `%XX` escapes (two hex digits) decoded; `None` for a malformed escape or
/// a result that is not UTF-8.
fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hi = char::from(*b.get(i + 1)?).to_digit(16)?;
            let lo = char::from(*b.get(i + 2)?).to_digit(16)?;
            out.push(u8::try_from(hi * 16 + lo).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The path variables when `route` matches `method` and `path`.
fn match_route(route: &RouteConfig, method: &str, path: &str) -> Option<BTreeMap<String, String>> {
    if !route.method.eq_ignore_ascii_case(method) {
        return None;
    }
    let template: Vec<&str> = route.path.split('/').skip(1).collect();
    let parts: Vec<&str> = path.split('/').skip(1).collect();
    if template.len() != parts.len() {
        return None;
    }
    let mut vars = BTreeMap::new();
    for (t, p) in template.iter().zip(&parts) {
        match t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
            Some(name) => {
                let value = decode(p).filter(|v| !v.is_empty())?;
                vars.insert(name.to_owned(), value);
            }
            None if t == p => {}
            None => return None,
        }
    }
    Some(vars)
}

/// What a request must have been decided on, when it may be decided at all.
struct Expected<'a> {
    route: &'a RouteConfig,
    resource_id: String,
    /// The bound parameters; `None` when the request is invalid.
    bound: Option<Map<String, Value>>,
    /// A path variable holds a `/` the route does not allow.
    slash: bool,
}

const EXACT: u64 = (1 << 53) - 1;

fn typed(kind: &str, from_text: bool, v: Value) -> Option<Value> {
    match (kind, v) {
        ("string", Value::String(s)) => Some(Value::String(s)),
        ("long", Value::Number(n)) if n.is_i64() => Some(Value::Number(n)),
        ("long", Value::String(s)) if from_text => s.parse::<i64>().ok().map(Value::from),
        ("bool", Value::Bool(b)) => Some(Value::Bool(b)),
        ("bool", Value::String(s)) if from_text => match s.as_str() {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => None,
        },
        ("list", Value::Array(items)) if items.iter().all(Value::is_string) => {
            Some(Value::Array(items))
        }
        _ => None,
    }
}

fn exact(v: &Value) -> bool {
    match v {
        Value::Number(n) => n
            .as_u64()
            .map(|u| u <= EXACT)
            .or_else(|| n.as_i64().map(|i| i.unsigned_abs() <= EXACT))
            .unwrap_or(true),
        Value::Array(items) => items.iter().all(exact),
        Value::Object(m) => m.values().all(exact),
        _ => true,
    }
}

/// The parameters of `route` read from `req`; `None` if it is invalid.
fn read_params(
    route: &RouteConfig,
    vars: &BTreeMap<String, String>,
    req: &HttpRequest,
    body: &Value,
) -> Option<Map<String, Value>> {
    let mut params = Map::new();
    for (name, p) in &route.params {
        let (kind, rest) = p.from.split_once('.')?;
        let several = |values: Vec<String>| -> Option<Option<Value>> {
            if p.kind == "list" {
                return Some(
                    (!values.is_empty())
                        .then(|| Value::Array(values.into_iter().map(Value::String).collect())),
                );
            }
            match values.len() {
                0 => Some(None),
                1 => Some(values.into_iter().next().map(Value::String)),
                _ => None,
            }
        };
        let raw = match kind {
            "path" => vars.get(rest).cloned().map(Value::String),
            "query" => several(
                req.query
                    .split('&')
                    .filter_map(|pair| {
                        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                        let k = decode(&k.replace('+', " "))?;
                        (k == rest).then(|| decode(&v.replace('+', " ")))?
                    })
                    .collect(),
            )?,
            "header" => several(
                req.headers
                    .iter()
                    .filter(|(k, _)| k.eq_ignore_ascii_case(rest))
                    .map(|(_, v)| v.clone())
                    .collect(),
            )?,
            _ => rest
                .split('.')
                .try_fold(body, |cur, key| cur.get(key))
                .filter(|v| !v.is_null())
                .cloned(),
        };
        match raw {
            None if p.required => return None,
            None => {}
            Some(v) => {
                params.insert(name.clone(), typed(&p.kind, kind != "body", v)?);
            }
        }
    }
    let bound: Map<String, Value> = match &route.bind {
        Some(bind) => bind
            .iter()
            .filter_map(|b| params.get(b).map(|v| (b.clone(), v.clone())))
            .collect(),
        None => params,
    };
    bound.values().all(exact).then_some(bound)
}

fn fill_id(template: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        let name = &rest[start + 1..start + len];
        out.push_str(vars.get(name).map_or("", String::as_str));
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    out
}

fn expected(req: &HttpRequest) -> Option<Expected<'static>> {
    let (route, vars) = routes()
        .iter()
        .find_map(|r| match_route(r, &req.method, &req.path).map(|v| (r, v)))?;
    let slash = !route.encoded_slashes && vars.values().any(|v| v.contains('/'));
    let body = match req.params.as_deref().map(serde_json::from_str::<Value>) {
        None => Some(Value::Object(Map::new())),
        Some(Ok(v @ Value::Object(_))) => Some(v),
        Some(_) => None,
    };
    let bound = body.and_then(|b| read_params(route, &vars, req, &b));
    Some(Expected {
        route,
        resource_id: fill_id(&route.resource.id, &vars),
        bound,
        slash,
    })
}

/// The one token an allowed request presented.
fn presented(req: &HttpRequest) -> &str {
    let auth: Vec<&str> = req
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.trim())
        .collect();
    assert_eq!(
        auth.len(),
        1,
        "decided with {} authorization headers",
        auth.len()
    );
    let (scheme, token) = auth[0].split_once(' ').expect("a scheme and a token");
    assert!(
        scheme.eq_ignore_ascii_case("bearer"),
        "decided on scheme `{scheme}`"
    );
    token.trim()
}

fn check_decided(req: &HttpRequest, who: &Principal, action: &Action) {
    let token = presented(req);
    assert!(
        TOKENS.contains(&token),
        "a token that is none of the vectors' verified: {token}"
    );
    assert!(!who.subject.is_empty());
    let Some(exp) = expected(req) else {
        panic!(
            "decided {action} on `{} {}`, which no route matches",
            req.method, req.path
        );
    };
    let at = format!("`{} {}`", req.method, req.path);
    assert!(!exp.slash, "decided with a `/` in a path variable of {at}");
    assert_eq!(action.name, exp.route.action, "another route for {at}");
    assert_eq!(action.resource_type, exp.route.resource.entity_type, "{at}");
    assert_eq!(
        action.resource_id, exp.resource_id,
        "another resource id for {at}"
    );
    let Some(bound) = exp.bound else {
        panic!("decided {action} on invalid parameters: {req:?}");
    };
    assert_eq!(action.params, bound, "decided on other parameters: {req:?}");
    assert!(action.digest_matches(), "the digest does not match");
}

fn has(list: &[String], item: &str) -> bool {
    list.iter().any(|x| x == item)
}

fn amount(action: &Action) -> i64 {
    action
        .params
        .get("amount")
        .and_then(Value::as_i64)
        .expect("a refund has an integer amount")
}

/// The demo's policies, by id (examples/bundle/policy.cedar).
fn check_demo_policies(decision: &Decision) {
    let reason = |id: &str| has(&decision.reasons, id);
    match &decision.verdict {
        Verdict::Allow(a) => {
            let scopes = &a.principal.scopes;
            if reason("payment-read") {
                assert!(
                    has(scopes, "payments:read"),
                    "payment-read without the scope"
                );
            }
            if reason("refund-small") {
                assert!(
                    has(scopes, "payments:refund"),
                    "refund-small without the scope"
                );
                let n = amount(&a.action);
                assert!(
                    (1..=100).contains(&n),
                    "refund-small allowed a refund of {n}"
                );
            }
            assert!(
                reason("payment-read") || reason("refund-small"),
                "allowed by {:?}: only payment-read and refund-small allow",
                decision.reasons
            );
        }
        Verdict::ApprovalRequired(c) => {
            let who = &c.requester;
            if reason("refund-large") {
                let n = amount(&c.action);
                assert!(
                    (101..=10_000).contains(&n),
                    "refund-large asked approval for {n}"
                );
            }
            if reason("file-write-confirm") {
                assert_eq!(
                    c.action.params.get("owner").and_then(Value::as_str),
                    Some(who.subject.as_str()),
                    "file-write-confirm for another's file"
                );
            }
            if reason("tenant-data-delete") {
                assert!(
                    has(&who.roles, "tenant-admin"),
                    "tenant-data-delete for a non-admin"
                );
                assert_eq!(
                    c.action.params.get("tenant").and_then(Value::as_str),
                    Some(who.tenant.as_str()),
                    "tenant-data-delete across tenants"
                );
            }
            assert!(!decision.reasons.is_empty(), "approval without a policy");
            assert_eq!(
                c.authorization_details[0]["action_digest"].as_str(),
                Some(c.action.digest.as_str())
            );
        }
        Verdict::StepUpRequired(s) => panic!("the demo bundle requires no sign-in, yet: {s:?}"),
        Verdict::Deny(_) => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let (req, now) = match serde_json::from_slice::<HttpRequest>(data) {
        Ok(req) => (req, NOW),
        Err(_) => match Input::arbitrary_take_rest(Unstructured::new(data)) {
            Ok(input) => (input.request(), NOW + u64::from(input.later)),
            Err(_) => return,
        },
    };
    let decision = ENGINE.evaluate_http(&req, now);
    assert_eq!(decision.policy_hash, ENGINE.policy_hash());
    assert_eq!(
        decision,
        ENGINE.evaluate_http(&req, now),
        "a second evaluation decided otherwise"
    );
    match &decision.verdict {
        Verdict::Allow(a) => {
            check_decided(&req, &a.principal, &a.action);
            assert_eq!(
                a.forward_headers[..3],
                [
                    (
                        "x-greenlight-subject".to_owned(),
                        a.principal.subject.clone()
                    ),
                    ("x-greenlight-issuer".to_owned(), a.principal.issuer.clone()),
                    ("x-greenlight-action".to_owned(), a.action.name.clone()),
                ]
            );
            assert!(
                a.approval_id.is_none() && a.consume.is_none(),
                "no action tokens here"
            );
        }
        Verdict::ApprovalRequired(c) => check_decided(&req, &c.requester, &c.action),
        Verdict::Deny(d) if d.code == DenialCode::RouteNotFound => {
            assert!(
                expected(&req).is_none(),
                "route-not-found for a path a route matches: {} {}",
                req.method,
                req.path
            );
        }
        Verdict::StepUpRequired(s) => panic!("the demo bundle requires no sign-in, yet: {s:?}"),
        Verdict::Deny(_) => {}
    }
    check_demo_policies(&decision);
});
