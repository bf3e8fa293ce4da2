//! The request file of `greenlight check` and `POST /v1/check`, defined
//! in `greenlight-types` so that a bundle's policy tests read the same.

pub use greenlight_types::request::{Headers, RequestFile};
