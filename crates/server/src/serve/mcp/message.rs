//! Reading a message one way only: the JSON-RPC members it may have, and
//! the headers that must mirror it.

use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::Value;

use super::bad_request;

/// JSON-RPC's code for headers that do not mirror the body (2026-07-28).
const HEADER_MISMATCH: i64 = -32020;

/// The JSON-RPC members a message may have; anything else (a `Method`
/// that a case-folding parser reads as `method`, say) is refused, so the
/// gateway and the upstream cannot read two different messages.
const MESSAGE_MEMBERS: [&str; 6] = ["jsonrpc", "id", "method", "params", "result", "error"];

/// The members a `tools/call`'s `params` may have.
const CALL_MEMBERS: [&str; 6] = [
    "name",
    "arguments",
    "_meta",
    "task",
    "inputResponses",
    "requestState",
];

/// Why a message is refused as it stands, if it is.
pub(super) fn malformed(message: &Value) -> Option<String> {
    let Value::Object(m) = message else {
        return Some("a message is a JSON object".to_owned());
    };
    if let Some(k) = m.keys().find(|k| !MESSAGE_MEMBERS.contains(&k.as_str())) {
        return Some(format!("`{k}` is not a member of a JSON-RPC message"));
    }
    if m.get("method").and_then(Value::as_str) == Some("tools/call") {
        if !m.contains_key("id") {
            return Some("tools/call must be a request, with an `id`".to_owned());
        }
        if let Some(Value::Object(p)) = m.get("params")
            && let Some(k) = p.keys().find(|k| !CALL_MEMBERS.contains(&k.as_str()))
        {
            return Some(format!("`params.{k}` is not a member of a tools/call"));
        }
    }
    None
}

/// A `400` with `HeaderMismatch` when `Mcp-Method` or `Mcp-Name` does not
/// mirror the body (a batch has no single method: its mirrors must be
/// absent).
pub(super) fn mirror_mismatch(headers: &HeaderMap, message: &Value) -> Option<Response> {
    // A header given twice, or not as text, mirrors nothing: refused.
    let header = |name: &str| -> Option<Option<String>> {
        let mut all = headers.get_all(name).iter();
        let first = all.next()?;
        if all.next().is_some() {
            return Some(None);
        }
        Some(first.to_str().ok().map(str::to_owned))
    };
    let method = message["method"].as_str();
    // What `Mcp-Name` mirrors, for the methods that have one (SEP-2243):
    // `Some(the member, if the body has it)`; `None` for the others.
    let name = match method {
        Some("tools/call" | "prompts/get") => Some(message["params"]["name"].as_str()),
        Some("resources/read") => Some(message["params"]["uri"].as_str()),
        Some("tasks/get" | "tasks/update" | "tasks/cancel") => {
            Some(message["params"]["taskId"].as_str())
        }
        _ => None,
    };
    let wrong = match header("mcp-method") {
        Some(Some(h)) => method != Some(h.as_str()),
        Some(None) => true,
        None => false,
    } || match header("mcp-name") {
        Some(Some(h)) => name.is_some_and(|n| n != Some(h.as_str())),
        Some(None) => true,
        None => false,
    };
    wrong.then(|| {
        bad_request(
            &message["id"],
            HEADER_MISMATCH,
            "Mcp-Method and Mcp-Name must mirror the body's method and tool name",
        )
    })
}
