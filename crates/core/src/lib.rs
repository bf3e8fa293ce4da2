//! Greenlight's decision and token logic: pure Rust, no I/O, no clock, no
//! wasm dependencies. The same code answers natively and inside
//! `greenlight.wasm`, so a decision is the same in every host.
//!
//! ```text
//! bundle files --Engine::load--> Engine --evaluate_http(request, now)--> Decision
//! ```
//!
//! The values it takes and gives are the plain types of `greenlight-types`,
//! re-exported here.

pub mod bundle;
mod cache;
pub mod call;
pub mod claims;
pub mod config;
pub mod engine;
pub mod explain;
pub mod jws;
pub mod policy;
pub mod policytest;
pub mod routes;
pub mod signature;
pub mod strict;
pub mod token;

pub use bundle::Bundle;
pub use engine::Engine;
pub use greenlight_types as types;
pub use greenlight_types::{
    AccessRequest, Action, Allowance, Approver, AttributeValue, BundleInfo, Challenge, Decision,
    Denial, DenialCode, GrantMode, HttpRequest, LoadError, Obligation, Principal, Problem,
    ProblemKind, SingleUse, StepUp, TestOutcome, Verdict, gateway,
};
