//! Greenlight's decision and token logic: pure Rust, no I/O, no clock, no
//! wasm dependencies. The same code answers natively and inside
//! `greenlight.wasm`, so a decision is the same in every host.
//!
//! ```text
//! bundle files --Engine::load--> Engine --evaluate_http(request, now)--> Decision
//! ```

pub mod bundle;
pub mod config;
pub mod decision;
pub mod digest;
pub mod engine;
pub mod gateway;
pub mod jws;
pub mod policy;
pub mod routes;
pub mod token;

pub use bundle::{Bundle, LoadError, Problem, ProblemKind};
pub use decision::{
    Allowance, Challenge, Decision, Denial, DenialCode, GrantMode, Obligation, SingleUse, Verdict,
};
pub use engine::{AccessRequest, Engine, HttpRequest};
