//! The `greenlight` command: checks requests against a bundle, validates
//! bundles, mints development tokens, and (later) serves the approval API.
//! The binary in `main.rs` only parses arguments and calls into here.

pub mod archive;
pub mod cli;
pub mod dev;
pub mod policytest;
pub mod request;
pub mod serve;
