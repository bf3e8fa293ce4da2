#![expect(
    unsafe_code,
    reason = "wit-bindgen generates the canonical-ABI glue with unsafe code; this crate writes none"
)]
#![expect(
    missing_docs,
    reason = "wit-bindgen generates the exported items; the WIT documents each of them"
)]
//! An example custom policy module: the shipped `greenlight.wasm` with one
//! rule written in code, which Cedar cannot express (`rule.rs`): no refund
//! above 1000 is taken at night in Berlin, where "night" follows the
//! European Union's daylight-saving rule.
//!
//! It exports the same `greenlight:approval/approver` world from the same
//! source as the shipped module (`guest/src/component.rs` and
//! `convert.rs`, included here by path), so it verifies tokens and
//! decides Cedar policies exactly as the shipped one does; its rule then
//! reviews each decision, the bundle's own tests included. A server loads
//! it with `greenlight serve --component`, and swaps it in and out like a
//! bundle (docs/live-policy.md, "Custom modules").

wit_bindgen::generate!({
    world: "approver",
    path: "../../wit",
});

#[path = "../../../guest/src/component.rs"]
mod component;
#[path = "../../../guest/src/convert.rs"]
mod convert;
mod rule;

use component::Component;

export!(Component);
