//! Requests and expected decisions, written by hand; only digests and
//! principals are computed, each from its definition.

use super::*;

/// A refund's parameters.
pub fn refund(amount: i64) -> Value {
    json!({ "amount": amount, "currency": "EUR" })
}

pub fn merge(base: Value, over: Value) -> Value {
    let mut b = base.as_object().cloned().unwrap_or_default();
    for (k, v) in over.as_object().cloned().unwrap_or_default() {
        if v.is_null() {
            b.remove(&k);
        } else {
            b.insert(k, v);
        }
    }
    Value::Object(b)
}

pub fn demo_claims(over: Value) -> Value {
    merge(
        json!({
            "iss": "https://idp.example.com",
            "aud": "https://api.example.com",
            "sub": "alice",
            "client_id": "shop-backend",
            "iat": NOW - 60,
            "exp": NOW + 3600,
            "jti": "demo-1",
            "scope": "payments:read payments:refund files:write",
        }),
        over,
    )
}

pub fn test_claims(iss: &str, over: Value) -> Value {
    merge(
        json!({
            "iss": iss,
            "aud": "https://api.test",
            "sub": "bob",
            "iat": NOW - 60,
            "exp": NOW + 600,
            "scope": "things:read things:write",
        }),
        over,
    )
}

pub fn digest(action: &str, rtype: &str, rid: &str, params: Value) -> String {
    let canonical = json!({
        "action": action,
        "resource": { "type": rtype, "id": rid },
        "params": params,
    });
    b64(&Sha256::digest(
        serde_json_canonicalizer::to_vec(&canonical).expect("jcs"),
    ))
}

pub struct Vector {
    pub name: &'static str,
    pub description: &'static str,
    pub bundle: &'static str,
    pub keys: Vec<(&'static str, &'static str)>,
    pub request: Value,
    pub verdict: Value,
    pub reasons: Vec<&'static str>,
}

pub fn http(method: &str, path: &str, token: Option<&str>, params: Option<Value>) -> Value {
    http_q(method, path, "", token, params)
}

pub fn http_q(
    method: &str,
    path: &str,
    query: &str,
    token: Option<&str>,
    params: Option<Value>,
) -> Value {
    let headers: Vec<Value> = token
        .map(|t| vec![json!(["authorization", format!("Bearer {t}")])])
        .unwrap_or_default();
    json!({ "http": {
        "method": method,
        "path": path,
        "query": query,
        "headers": headers,
        "params": params.map(|p| if p.is_string() { p } else { Value::String(p.to_string()) }),
    }})
}

/// The principal a verified token with these claims names, by the rules of
/// README "How a decision is made": `sub`; `client_id`, else `azp`; the
/// `scope` string split on spaces; the `groups` and `roles` arrays; the
/// `tenant` string; `iss`. Both bundles use the default claim names and
/// the entity type `User`.
pub fn principal(claims: &Value) -> Value {
    let list = |name: &str| claims.get(name).cloned().unwrap_or_else(|| json!([]));
    let text = |name: &str| claims.get(name).and_then(Value::as_str).unwrap_or("");
    let client = claims
        .get("client_id")
        .or_else(|| claims.get("azp"))
        .and_then(Value::as_str)
        .unwrap_or("");
    json!({
        "entity_type": "User",
        "subject": text("sub"),
        "client_id": client,
        "scopes": text("scope").split_whitespace().collect::<Vec<_>>(),
        "groups": list("groups"),
        "roles": list("roles"),
        "tenant": text("tenant"),
        // An action token's person is the one its `sub_id` names.
        "issuer": claims
            .pointer("/sub_id/iss")
            .and_then(Value::as_str)
            .unwrap_or(text("iss")),
    })
}

/// One action as a decision names it, with its digest.
pub fn action(name: &str, rtype: &str, rid: &str, params: Value) -> Value {
    json!({
        "name": name,
        "resource_type": rtype,
        "resource_id": rid,
        "params": params.clone(),
        "digest": digest(name, rtype, rid, params),
    })
}

pub fn allow(who: Value, act: Value, consume: Value, approval: Option<&str>) -> Value {
    let mut headers = vec![
        json!(["x-greenlight-subject", who["subject"]]),
        json!(["x-greenlight-issuer", who["issuer"]]),
        json!(["x-greenlight-action", act["name"]]),
    ];
    if let Some(a) = approval {
        headers.push(json!(["x-greenlight-approval", a]));
    }
    json!({ "kind": "allow", "principal": who, "action": act, "approval_id": approval,
            "consume": consume, "forward_headers": headers })
}

pub fn deny(code: &str, message: &str) -> Value {
    json!({ "kind": "deny", "code": code, "message": message })
}

/// A denial that names the issuer whose fetched keys to refresh.
pub fn deny_for(code: &str, message: &str, issuer: &str) -> Value {
    json!({ "kind": "deny", "code": code, "message": message, "issuer": issuer })
}

pub fn challenge(location: &str, who: Value, act: Value, obligation: Value) -> Value {
    // Members in the order the decision's JSON has them.
    json!({
        "kind": "approval-required",
        "requester": who,
        "action": act.clone(),
        "authorization_details": [{
            "type": "urn:greenlight:action",
            "locations": [location],
            "actions": [act["name"]],
            "identifier": format!("{}::{}", act["resource_type"].as_str().unwrap_or(""),
                                  act["resource_id"].as_str().unwrap_or("")),
            "resource": { "type": act["resource_type"], "id": act["resource_id"] },
            "params": act["params"],
            "action_digest": act["digest"],
        }],
        "obligation": obligation,
    })
}

pub fn refund_obligation() -> Value {
    json!({
        "approvers": ["group:finance"], "quorum": 2, "ttl_seconds": 900, "grant": "once",
        "window_seconds": 0, "reason_required": true,
        "message": "Refund above 100: two finance approvals needed",
    })
}
