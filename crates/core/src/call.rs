//! One request given as JSON text, decided (the WIT `decide-json`): the
//! same three calls as `evaluate-http`, `evaluate` and `evaluate-as`,
//! named as the conformance vectors write a request. A host whose binding
//! pays for every WIT value it converts (wasmtime-py) sends one string and
//! reads one back.
//!
//! The text is read strictly: a member named twice in any object is
//! refused, as in a token's claims ([`crate::strict`]), so a host that
//! built `{"subject": "alice", …, "subject": "admin"}` by hand is told so
//! rather than decided for one of the two.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::strict::{self, StrictError};
use crate::{AccessRequest, Decision, Engine, HttpRequest, Principal};

/// One call of the engine, as `tests/vectors` writes a request:
/// `{"http": …}`, `{"access": …}` or `{"vouched": {"subject": …,
/// "access": …}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Call {
    /// An HTTP request ([`Engine::evaluate_http`]).
    Http(HttpRequest),
    /// An AuthZEN-shaped request with its token ([`Engine::evaluate`]).
    Access(AccessRequest),
    /// An AuthZEN-shaped request for a subject the host vouches for
    /// ([`Engine::evaluate_as`]).
    Vouched(Box<Vouched>),
}

/// A vouched subject and the request made for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vouched {
    /// Who the host vouches for.
    pub subject: Principal,
    /// What is asked for them; its `token` must be empty.
    pub access: AccessRequest,
}

impl Call {
    /// Reads a call from JSON text, or says why it is not one.
    pub fn read(text: &str) -> Result<Self, String> {
        let object = strict::object(text.as_bytes()).map_err(|e| match e {
            StrictError::Duplicate(name) => {
                format!("the request names the member `{name}` twice in one object")
            }
            StrictError::Malformed => match serde_json::from_str::<Value>(text) {
                Err(e) => format!("the request is not JSON: {e}"),
                Ok(_) => "the request is not a JSON object".to_owned(),
            },
        })?;
        serde_json::from_value(Value::Object(object))
            .map_err(|e| format!("the request is not one `http`, `access` or `vouched` call: {e}"))
    }
}

impl Engine {
    /// Decides `call` at `now` exactly as the call it names would.
    pub fn decide_call(&self, call: &Call, now: u64) -> Decision {
        match call {
            Call::Http(r) => self.evaluate_http(r, now),
            Call::Access(r) => self.evaluate(r, now),
            Call::Vouched(v) => self.evaluate_as(&v.subject, &v.access, now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_shape_is_read() {
        let http = Call::read(r#"{"http": {"method": "GET", "path": "/a"}}"#).expect("http");
        assert_eq!(
            http,
            Call::Http(HttpRequest {
                method: "GET".into(),
                path: "/a".into(),
                ..HttpRequest::default()
            })
        );
        let access = Call::read(
            r#"{"access": {"token": "t", "action": "a", "resource_type": "R", "resource_id": "1"}}"#,
        )
        .expect("access");
        assert!(matches!(access, Call::Access(ref r) if r.token == "t" && r.resource_id == "1"));
        let vouched = Call::read(
            r#"{"vouched": {"subject": {"entity_type": "User", "subject": "alice", "issuer": "i"},
                            "access": {"token": "", "action": "a", "resource_type": "R", "resource_id": "1"}}}"#,
        )
        .expect("vouched");
        assert!(matches!(vouched, Call::Vouched(ref v) if v.subject.subject == "alice"));
    }

    /// Every refusal names what is wrong, with serde's own words after it.
    #[test]
    fn what_is_not_a_call_is_refused_with_why() {
        let cases = [
            (
                "",
                "the request is not JSON: EOF while parsing a value at line 1 column 0",
            ),
            ("[1]", "the request is not a JSON object"),
            (
                r#"{"http": {"method": "GET", "path": "/a", "path": "/b"}}"#,
                "the request names the member `path` twice in one object",
            ),
            (
                r#"{"vouched": {"subject": {"entity_type": "User", "subject": "alice", "issuer": "i",
                    "attributes": {"level": "1", "level": "9"}},
                    "access": {"token": "", "action": "a", "resource_type": "R", "resource_id": "1"}}}"#,
                "the request names the member `level` twice in one object",
            ),
            (
                r#"{"other": {}}"#,
                "the request is not one `http`, `access` or `vouched` call: unknown variant `other`, expected one of `http`, `access`, `vouched`",
            ),
            (
                r#"{"http": {"method": "GET", "path": "/a"}, "access": {}}"#,
                "the request is not one `http`, `access` or `vouched` call: invalid value: map, expected map with a single key",
            ),
            (
                r#"{"http": {"method": "GET", "path": "/a", "body": "x"}}"#,
                "the request is not one `http`, `access` or `vouched` call: unknown field `body`, expected one of `method`, `path`, `query`, `headers`, `params`, `entities`",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(Call::read(text).expect_err(text), want, "{text}");
        }
    }
}
