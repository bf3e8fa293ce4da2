//! The plain values every part of Greenlight exchanges: the decision and
//! everything a host acts on (who, what, which approval, which single-use
//! record), requests, principals, typed actions and their digest, bundle
//! load errors, and the one mapping from a decision to the HTTP answer a
//! gateway gives.
//!
//! The same shapes as the WIT `types` interface (`wit/types.wit`). The core
//! (which decides) and every host (which acts) name these types; none of
//! them needs Cedar or wasmtime to do so.
//!
//! ```
//! use greenlight_types::{Decision, DenialCode, gateway};
//!
//! let d = Decision::deny(DenialCode::TokenMissing, "no bearer token was presented", "h");
//! let answer = gateway::respond(&d, "https://greenlight.example.com");
//! assert_eq!(answer.status, 401);
//! ```

pub mod action;
pub mod approver;
pub mod bundle;
pub mod decision;
pub mod gateway;
pub mod policytest;
pub mod principal;
pub mod request;
pub mod token;

pub use action::{AUTHORIZATION_DETAILS_TYPE, Action, check_exact};
pub use approver::{Approver, ApproverError};
pub use bundle::{BundleInfo, LoadError, Problem, ProblemKind};
pub use decision::{
    Allowance, Challenge, Decision, Denial, DenialCode, GrantMode, Obligation, SingleUse, StepUp,
    Verdict,
};
pub use policytest::TestOutcome;
pub use principal::{AttributeValue, Credential, Principal};
pub use request::{AccessRequest, HttpRequest};
pub use token::{ACTION_TOKEN_TYP, ActionToken, EngineStats};
