#![expect(
    unsafe_code,
    reason = "wit-bindgen generates the canonical-ABI glue with unsafe code; this crate writes none"
)]
#![expect(
    missing_docs,
    reason = "wit-bindgen generates the exported items; the WIT documents each of them"
)]
//! `greenlight.wasm`: wit-bindgen glue that exports `greenlight-core` as the
//! `greenlight:approval/approver` world. No logic lives here; every
//! function converts its arguments, calls the core, and converts back
//! (`component.rs`, `convert.rs`). A custom module reuses those two files
//! with a `rule.rs` of its own (examples/night-refunds).

wit_bindgen::generate!({
    world: "approver",
    path: "../wit",
});

mod component;
mod convert;

/// The shipped module's own rule: none.
mod rule {
    use greenlight_core::Decision;

    /// Every decision as the core made it.
    pub fn review(decision: Decision, _now: u64) -> Decision {
        decision
    }
}

use component::Component;

export!(Component);
