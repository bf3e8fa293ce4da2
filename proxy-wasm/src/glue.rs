//! The proxy-wasm ABI: a root context per VM holds the engine and fetches
//! keys; an HTTP context per request carries out [`flow`]'s steps.
//!
//! The SDK's `main!` entry point is an exported, unmangled function, which
//! the workspace's `unsafe_code` lint counts as unsafe; nothing else here
//! is.
#![allow(
    unsafe_code,
    reason = "proxy_wasm::main! exports _initialize with #[no_mangle]"
)]

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use greenlight_core::Engine;
use greenlight_types::{DenialCode, Verdict};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

use crate::config::Config;
use crate::flow::{Exchange, Step, refuse};
use crate::keys::Sources;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

/// What the VM's contexts share: one loaded bundle and its key sources.
struct Loaded {
    engine: Engine,
    config: Config,
    sources: Sources,
}

type Shared = Rc<RefCell<Option<Loaded>>>;

#[derive(Default)]
struct Root {
    shared: Shared,
    /// Key fetches in flight: call token to source index.
    calls: HashMap<u32, usize>,
}

fn now_of(ctx: &dyn Context) -> u64 {
    ctx.get_current_time()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Root {
    fn fetch_due_keys(&mut self) {
        let now = now_of(self);
        let mut shared = self.shared.borrow_mut();
        let Some(loaded) = shared.as_mut() else {
            return;
        };
        let timeout = Duration::from_millis(loaded.config.service.timeout_ms);
        for i in loaded.sources.due(now) {
            let s = &mut loaded.sources.list[i];
            s.asked_at = Some(now);
            match self.dispatch_http_call(
                &s.cluster,
                vec![
                    (":method", "GET"),
                    (":path", &s.path),
                    (":authority", &s.authority),
                    ("accept", "application/json"),
                ],
                None,
                vec![],
                timeout,
            ) {
                Ok(token) => {
                    s.in_flight = true;
                    self.calls.insert(token, i);
                }
                Err(e) => proxy_wasm::hostcalls::log(
                    LogLevel::Warn,
                    &format!(
                        "greenlight: cannot ask cluster `{}` for {}'s keys: {e:?}",
                        s.cluster, s.issuer
                    ),
                )
                .unwrap_or_default(),
            }
        }
    }
}

impl Root {
    /// Keys that could not be refreshed for too long stop verifying: their
    /// issuer's tokens are refused, saying why, until a fetch works.
    fn withdraw_stale_keys(&mut self) {
        let now = now_of(self);
        let mut shared = self.shared.borrow_mut();
        let Some(loaded) = shared.as_mut() else {
            return;
        };
        for i in loaded.sources.stale(now) {
            let source = &mut loaded.sources.list[i];
            let since = source.loaded_at.map_or(0, |t| now.saturating_sub(t));
            let reason =
                format!("its keys were last fetched {since} s ago and every fetch since failed");
            match loaded.engine.withdraw_keys(&source.issuer, &reason) {
                Ok(()) => {
                    source.withdrawn = true;
                    proxy_wasm::hostcalls::log(
                        LogLevel::Warn,
                        &format!("greenlight: {}'s keys withdrawn: {reason}", source.issuer),
                    )
                    .unwrap_or_default();
                }
                Err(e) => proxy_wasm::hostcalls::log(
                    LogLevel::Error,
                    &format!(
                        "greenlight: {}'s stale keys could not be withdrawn: {e:?}",
                        source.issuer
                    ),
                )
                .unwrap_or_default(),
            }
        }
    }
}

impl Context for Root {
    fn on_http_call_response(&mut self, token: u32, _: usize, body_size: usize, _: usize) {
        let Some(i) = self.calls.remove(&token) else {
            return;
        };
        let status = self.get_http_call_response_header(":status");
        let body = self.get_http_call_response_body(0, body_size);
        let now = now_of(self);
        let mut shared = self.shared.borrow_mut();
        let Some(loaded) = shared.as_mut() else {
            return;
        };
        let max = loaded.sources.max_bytes;
        let source = &mut loaded.sources.list[i];
        source.in_flight = false;
        let outcome = match (status.as_deref(), body) {
            (Some("200"), Some(b)) if b.len() <= max => String::from_utf8(b)
                .map_err(|_| "the key set is not UTF-8".to_owned())
                .and_then(|text| {
                    loaded
                        .engine
                        .set_keys(&source.issuer, &text)
                        .map_err(|e| format!("{e:?}"))
                }),
            (Some("200"), Some(b)) => Err(format!("the key set has {} bytes, over {max}", b.len())),
            (Some(s), _) => Err(format!("the key source answered {s}")),
            (None, _) => Err("the key source cannot be reached".to_owned()),
        };
        match outcome {
            Ok(()) => {
                source.loaded_at = Some(now);
                source.unknown_kid_at = None;
                source.withdrawn = false;
            }
            Err(why) => proxy_wasm::hostcalls::log(
                LogLevel::Warn,
                &format!(
                    "greenlight: {}'s keys were not updated: {why}",
                    source.issuer
                ),
            )
            .unwrap_or_default(),
        }
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _: usize) -> bool {
        let loaded = self
            .get_plugin_configuration()
            .ok_or_else(|| "the plugin configuration is empty".to_owned())
            .and_then(|b| {
                String::from_utf8(b).map_err(|_| "the plugin configuration is not UTF-8".to_owned())
            })
            .and_then(|text| Config::parse(&text))
            .and_then(|config| {
                let engine = Engine::load(&config.files())
                    .map_err(|e| format!("the bundle does not load: {e:?}"))?;
                let info = engine.describe();
                config.admits(&info)?;
                let sources = Sources::new(&info, &config)?;
                Ok(Loaded {
                    engine,
                    config,
                    sources,
                })
            });
        match loaded {
            Ok(l) => {
                proxy_wasm::hostcalls::log(
                    LogLevel::Info,
                    &format!(
                        "greenlight: bundle loaded (policy hash {})",
                        l.engine.policy_hash()
                    ),
                )
                .unwrap_or_default();
                *self.shared.borrow_mut() = Some(l);
                self.set_tick_period(Duration::from_secs(1));
                self.fetch_due_keys();
                true
            }
            Err(why) => {
                proxy_wasm::hostcalls::log(LogLevel::Error, &format!("greenlight: {why}"))
                    .unwrap_or_default();
                // Refusing the configuration: the proxy does not serve
                // with this filter unloaded.
                false
            }
        }
    }

    fn on_tick(&mut self) {
        self.withdraw_stale_keys();
        self.fetch_due_keys();
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Filter {
            shared: self.shared.clone(),
            exchange: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One request.
struct Filter {
    shared: Shared,
    exchange: Option<Exchange>,
}

impl Filter {
    /// Carries out a step. Returns what the proxy does with the request now.
    fn take(&mut self, step: Step, paused: bool) -> Action {
        match step {
            Step::Forward { remove, add } => {
                for name in &remove {
                    self.set_http_request_header(name, None);
                }
                for (name, value) in &add {
                    self.set_http_request_header(name, Some(value));
                }
                if paused {
                    self.resume_http_request();
                }
                Action::Continue
            }
            Step::Respond(r) => {
                let headers: Vec<(&str, &str)> = r
                    .headers
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_str()))
                    .collect();
                let body = r.body.to_string();
                self.send_http_response(u32::from(r.status), headers, Some(body.as_bytes()));
                Action::Pause
            }
            Step::Ask(json) => {
                let (cluster, authority, timeout, hash, url) = {
                    let shared = self.shared.borrow();
                    let Some(l) = shared.as_ref() else {
                        return Action::Pause;
                    };
                    (
                        l.config.service.cluster.clone(),
                        l.config.service.authority.clone(),
                        Duration::from_millis(l.config.service.timeout_ms),
                        l.engine.policy_hash().to_owned(),
                        l.config.service.url.clone(),
                    )
                };
                let call = self.dispatch_http_call(
                    &cluster,
                    vec![
                        (":method", "POST"),
                        (":path", "/v1/check"),
                        (":authority", &authority),
                        ("content-type", "application/json"),
                    ],
                    Some(json.as_bytes()),
                    vec![],
                    timeout,
                );
                match call {
                    Ok(_) => Action::Pause,
                    Err(_) => {
                        let step = refuse(
                            DenialCode::EngineUnavailable,
                            "the approval service cannot be reached".to_owned(),
                            &hash,
                            &url,
                        );
                        self.take(step, paused)
                    }
                }
            }
        }
    }

    /// The configuration's `max_body_bytes`, once a bundle is loaded.
    fn max_body(&self) -> Option<usize> {
        self.shared
            .borrow()
            .as_ref()
            .map(|l| l.config.max_body_bytes)
    }

    /// Now, for deciding: the proxy's clock, or the configuration's
    /// `test_fixed_now`.
    fn now(&self) -> u64 {
        let fixed = self
            .shared
            .borrow()
            .as_ref()
            .and_then(|l| l.config.test_fixed_now);
        fixed.unwrap_or_else(|| now_of(self))
    }

    /// Decides the request held in `exchange` and carries out the step.
    fn decide(&mut self, paused: bool) -> Action {
        let now = self.now();
        let step = {
            let mut shared = self.shared.borrow_mut();
            let (Some(l), Some(x)) = (shared.as_mut(), self.exchange.as_ref()) else {
                return Action::Pause;
            };
            let decision = x.decide(&l.engine, now);
            if let Verdict::Deny(d) = &decision.verdict
                && d.code == DenialCode::TokenUnknownKey
                && let Some(issuer) = &d.issuer
            {
                l.sources.unknown_kid(issuer, now);
            }
            x.step(&decision, &l.config.service.url)
        };
        self.take(step, paused)
    }

    /// A refusal before any decision: the bundle is not loaded, the
    /// request cannot be read.
    fn refuse_now(&mut self, code: DenialCode, why: String, paused: bool) -> Action {
        let (hash, url) = match self.shared.borrow().as_ref() {
            Some(l) => (
                l.engine.policy_hash().to_owned(),
                l.config.service.url.clone(),
            ),
            None => (String::new(), String::new()),
        };
        self.take(refuse(code, why, &hash, &url), paused)
    }
}

impl Context for Filter {
    fn on_http_call_response(&mut self, _: u32, _: usize, body_size: usize, _: usize) {
        let status = self
            .get_http_call_response_header(":status")
            .and_then(|s| s.parse::<u16>().ok());
        let body = self.get_http_call_response_body(0, body_size);
        let step = {
            let shared = self.shared.borrow();
            let (Some(l), Some(x)) = (shared.as_ref(), self.exchange.as_ref()) else {
                return;
            };
            x.answered(
                status,
                body.as_deref(),
                l.engine.policy_hash(),
                &l.config.service.url,
            )
        };
        self.take(step, true);
    }
}

impl HttpContext for Filter {
    fn on_http_request_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        if self.shared.borrow().is_none() {
            return self.refuse_now(
                DenialCode::EngineUnavailable,
                "Greenlight has no bundle loaded".to_owned(),
                false,
            );
        }
        let mut exchange = match Exchange::new(self.get_http_request_headers_bytes()) {
            Ok(x) => x,
            Err(why) => return self.refuse_now(DenialCode::RequestInvalid, why, false),
        };
        let now = self.now();
        let ahead = {
            let shared = self.shared.borrow();
            match shared.as_ref() {
                Some(l) if exchange.wants_body(&l.engine, end_of_stream) => {
                    Some(exchange.ahead(&l.engine, now, &l.config.service.url))
                }
                _ => None,
            }
        };
        self.exchange = Some(exchange);
        match ahead {
            // The route reads the body: the headers go ahead, the body is
            // held until the decision (on_http_request_body).
            Some(step) => self.take(step, false),
            None => self.decide(false),
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(max) = self.max_body() else {
            return Action::Pause;
        };
        if !self.exchange.as_ref().is_some_and(Exchange::went_ahead) {
            // Decided on the headers; the body is not parameters.
            return Action::Continue;
        }
        if body_size > max {
            return self.refuse_now(
                DenialCode::RequestInvalid,
                format!("the request body is larger than {max} bytes"),
                false,
            );
        }
        if !end_of_stream {
            // Held (buffered by the proxy) until the whole body is here.
            return Action::Pause;
        }
        self.body_done(body_size, max)
    }

    /// A body that ends with trailers (HTTP/2, gRPC) never has a data
    /// frame marked as the last: the trailers end it, and the request is
    /// decided here. Returning `Continue` undecided would let the held
    /// body go upstream.
    fn on_http_request_trailers(&mut self, _: usize) -> Action {
        if !self.exchange.as_ref().is_some_and(Exchange::went_ahead) {
            return Action::Continue;
        }
        let Some(max) = self.max_body() else {
            return Action::Pause;
        };
        let size = self
            .get_http_request_body(0, max.saturating_add(1))
            .map_or(0, |b| b.len());
        self.body_done(size, max)
    }
}

impl Filter {
    /// The whole body is here (`size` bytes): read it and decide.
    fn body_done(&mut self, size: usize, max: usize) -> Action {
        if size > max {
            return self.refuse_now(
                DenialCode::RequestInvalid,
                format!("the request body is larger than {max} bytes"),
                false,
            );
        }
        let body = self.get_http_request_body(0, size);
        let set = match self.exchange.as_mut() {
            Some(x) => x.set_body(body.as_deref(), max),
            None => return Action::Pause,
        };
        if let Err(why) = set {
            return self.refuse_now(DenialCode::RequestInvalid, why, false);
        }
        self.decide(false)
    }
}
