//! Greenlight as a proxy-wasm HTTP filter (ABI 0.2.1), for proxies that
//! load proxy-wasm modules rather than components (Envoy, Istio, and
//! others): a second guest over the same `greenlight-core`, not a second
//! implementation. docs/proxy-wasm.md describes it; examples/envoy-wasm
//! runs it in Envoy.
//!
//! - The bundle comes in the plugin configuration ([`config`]) and is
//!   loaded once per VM, in `on_configure`.
//! - Each request is decided in `on_http_request_headers`, or once its
//!   body is read when the body is JSON (bounded by `max_body_bytes`).
//! - An allow forwards the request without the client's `x-greenlight-*`
//!   headers and with the decision's; anything else is answered with the
//!   gateway answer (docs/gateway.md), the same as every host gives.
//! - A decision that needs state — a once-only token to consume, an
//!   approval that may have been revoked, a window grant — goes to the
//!   approval service (`POST /v1/check`) through the proxy; when the
//!   service cannot be reached the request is refused (`503`).
//! - The service's action-token keys, and the keys of issuers with
//!   `jwks_uri`, are fetched through the proxy and refreshed ([`keys`]).

pub mod config;
pub mod flow;
pub mod keys;

#[cfg(target_arch = "wasm32")]
mod glue;
