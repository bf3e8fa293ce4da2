//! Where `greenlight.wasm` is, for hosts in this workspace and for other
//! languages (`greenlight component path`).
//!
//! The build script compiles `guest/` for `wasm32-wasip2` with the `guest`
//! profile (opt-level `s`, LTO, one codegen unit, stripped), so the component
//! always matches the source of this checkout; nothing binary is checked in.

/// The path of the built `greenlight.wasm` (named `greenlight_guest.wasm` by cargo).
pub const GREENLIGHT_WASM_PATH: &str = env!("GREENLIGHT_WASM_PATH");

/// The bytes of `greenlight.wasm`, embedded so a binary works wherever it is copied.
pub const GREENLIGHT_WASM: &[u8] = include_bytes!(env!("GREENLIGHT_WASM_PATH"));

/// The path of the hostile test component (loops, allocates or traps on demand).
pub const HOSTILE_WASM_PATH: &str = env!("GREENLIGHT_HOSTILE_WASM_PATH");

/// The path of the example custom module (examples/night-refunds): the
/// shipped module plus a rule in code.
pub const NIGHT_REFUNDS_WASM_PATH: &str = env!("GREENLIGHT_NIGHT_REFUNDS_WASM_PATH");
