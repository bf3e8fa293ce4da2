//! One request through the filter, as plain Rust: what the proxy handed
//! over, the engine's decision, and the step the proxy takes next. The
//! ABI glue (`glue.rs`) only carries these steps out.

use greenlight_core::{Engine, HttpRequest};
use greenlight_types::decision::forward;
use greenlight_types::gateway::{self, Response};
use greenlight_types::{Decision, DenialCode, Verdict};
use serde_json::{Value, json};

/// What the proxy does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Send the request upstream, without the client's `x-greenlight-*`
    /// headers (`remove`) and with the decision's forward headers (`add`).
    Forward {
        /// Header names to remove.
        remove: Vec<String>,
        /// Headers to set.
        add: Vec<(String, String)>,
    },
    /// Answer the client with the gateway answer; nothing goes upstream.
    Respond(Response),
    /// Ask the approval service (`POST /v1/check` with this JSON) and take
    /// its decision instead ([`Exchange::answered`]).
    Ask(String),
}

/// One request being decided.
#[derive(Clone, Debug)]
pub struct Exchange {
    request: HttpRequest,
    ours: Vec<String>,
    json_body: bool,
    /// The forward headers set before the body was read, when the route
    /// binds body parameters ([`Exchange::ahead`]).
    sent_ahead: Option<Vec<(String, String)>>,
}

impl Exchange {
    /// The request from the proxy's headers (`:method`, `:path` and the
    /// rest, names lower-case). The client's `x-greenlight-*` headers are
    /// set aside, to be removed: the engine never sees them.
    pub fn new(headers: Vec<(String, Vec<u8>)>) -> Result<Self, String> {
        let mut method = None;
        let mut target = None;
        let mut pairs = Vec::with_capacity(headers.len());
        let mut ours = Vec::new();
        let mut json_body = true;
        for (name, value) in headers {
            let name = name.to_ascii_lowercase();
            let value =
                String::from_utf8(value).map_err(|_| format!("header `{name}` is not UTF-8"))?;
            match name.as_str() {
                ":method" => method = Some(value),
                ":path" => target = Some(value),
                n if n.starts_with(':') => {}
                n if forward::is_gateway_header(n) => {
                    if !ours.contains(&name) {
                        ours.push(name);
                    }
                }
                _ => {
                    if name == "content-type" {
                        json_body = gateway::is_json_media_type(&value);
                    }
                    pairs.push((name, value));
                }
            }
        }
        let method = method.ok_or("the proxy gave no `:method`")?;
        let target = target.ok_or("the proxy gave no `:path`")?;
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        Ok(Self {
            request: HttpRequest {
                method,
                path: path.to_owned(),
                query: query.to_owned(),
                headers: pairs,
                params: None,
                entities: None,
            },
            ours,
            json_body,
            sent_ahead: None,
        })
    }

    /// Whether the body must be read before deciding: there is one, it is
    /// JSON or untyped (only those are parameters), and the request's
    /// route reads parameters from it.
    pub fn wants_body(&self, engine: &Engine, end_of_stream: bool) -> bool {
        !end_of_stream
            && self.json_body
            && engine.reads_body(&self.request.method, &self.request.path)
    }

    /// Whether the headers went ahead of the body ([`Exchange::ahead`]).
    pub fn went_ahead(&self) -> bool {
        self.sent_ahead.is_some()
    }

    /// For a route that reads the body: the step to take with the headers
    /// before the body is read. A proxy-wasm host cannot hold the headers
    /// while the filter reads the body (it pauses the whole stream), so
    /// they go upstream first, without the client's `x-greenlight-*` and
    /// with the forward headers the token and the route determine; the
    /// body follows only on an allow that carries exactly those headers.
    /// When the token or the route already denies, the answer is now.
    pub fn ahead(&mut self, engine: &Engine, now: u64, service_url: &str) -> Step {
        match engine.forward_headers_ahead(&self.request, now) {
            Ok(headers) => {
                self.sent_ahead = Some(headers.clone());
                Step::Forward {
                    remove: self.ours.clone(),
                    add: headers,
                }
            }
            Err(decision) => Step::Respond(gateway::respond(&decision, service_url)),
        }
    }

    /// Sets the body read as parameters (`None` without one).
    pub fn set_body(&mut self, body: Option<&[u8]>, max: usize) -> Result<(), String> {
        self.request.params = match body {
            None => None,
            Some([]) => None,
            Some(b) if b.len() > max => {
                return Err(format!("the request body is larger than {max} bytes"));
            }
            Some(b) => Some(
                String::from_utf8(b.to_vec())
                    .map_err(|_| "the request body is not UTF-8".to_owned())?,
            ),
        };
        Ok(())
    }

    /// The engine's decision.
    pub fn decide(&self, engine: &Engine, now: u64) -> Decision {
        engine.evaluate_http(&self.request, now)
    }

    /// What to do with `decision`: forward, answer, or ask the service
    /// when the decision needs state the filter does not have.
    pub fn step(&self, decision: &Decision, service_url: &str) -> Step {
        if decision.verdict.needs_service() {
            return Step::Ask(self.check_body());
        }
        self.finish(decision, service_url)
    }

    /// The step for a decision that is final. After the headers went
    /// ahead, an allow adds nothing (they are upstream already) and must
    /// carry exactly the forward headers sent; otherwise it is refused.
    fn finish(&self, decision: &Decision, service_url: &str) -> Step {
        match (&decision.verdict, &self.sent_ahead) {
            (Verdict::Allow(allow), None) => Step::Forward {
                remove: self.ours.clone(),
                add: allow.forward_headers.clone(),
            },
            (Verdict::Allow(allow), Some(sent)) if &allow.forward_headers == sent => {
                Step::Forward {
                    remove: Vec::new(),
                    add: Vec::new(),
                }
            }
            (Verdict::Allow(_), Some(_)) => refuse(
                DenialCode::EngineInvalidOutput,
                "the allow names other forward headers than those sent ahead of the body"
                    .to_owned(),
                &decision.policy_hash,
                service_url,
            ),
            _ => Step::Respond(gateway::respond(decision, service_url)),
        }
    }

    /// The request as `/v1/check` reads it.
    pub fn check_body(&self) -> String {
        let params = self
            .request
            .params
            .as_deref()
            .and_then(|p| serde_json::from_str::<Value>(p).ok());
        json!({
            "method": self.request.method,
            "path": self.request.path,
            "query": self.request.query,
            "headers": self.request.headers,
            "params": params,
        })
        .to_string()
    }

    /// The step once the service has answered `/v1/check` (`None`: the
    /// call failed or timed out). Anything but a decision is a refusal.
    pub fn answered(
        &self,
        status: Option<u16>,
        body: Option<&[u8]>,
        policy_hash: &str,
        service_url: &str,
    ) -> Step {
        let fail = |why: String| {
            Step::Respond(gateway::respond(
                &Decision::deny(DenialCode::EngineUnavailable, why, policy_hash),
                service_url,
            ))
        };
        let Some(status) = status else {
            return fail("the approval service cannot be reached".to_owned());
        };
        if status != 200 {
            return fail(format!("the approval service answered {status}"));
        }
        let decision = body
            .and_then(|b| serde_json::from_slice::<Value>(b).ok())
            .and_then(|mut v| {
                // The service adds where to ask and which component decided.
                if let Some(o) = v.as_object_mut() {
                    o.remove("ask");
                    o.remove("component_hash");
                }
                serde_json::from_value::<Decision>(v).ok()
            });
        match decision {
            // The service's decision is final: it has consulted its store.
            Some(d) => self.finish(&d, service_url),
            None => fail("the approval service did not answer with a decision".to_owned()),
        }
    }
}

/// A refusal the filter makes itself: the gateway answer of a deny.
pub fn refuse(code: DenialCode, why: String, policy_hash: &str, service_url: &str) -> Step {
    Step::Respond(gateway::respond(
        &Decision::deny(code, why, policy_hash),
        service_url,
    ))
}
