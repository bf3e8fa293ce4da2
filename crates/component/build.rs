//! Builds `greenlight.wasm`, the hostile test component and the example
//! custom module (examples/night-refunds) for
//! `wasm32-wasip2` with the workspace's size-optimised `guest` profile, in a
//! target directory of their own (a nested build in the outer one would
//! wait on the outer build's lock).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Environment the outer build sets that must not leak into the nested
/// build: flags for the host target would be applied to wasm.
const SCRUB: &[&str] = &[
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTFLAGS",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_BUILD_RUSTFLAGS",
    "CARGO_PRIMARY_PACKAGE",
    "RUSTC_WORKSPACE_WRAPPER",
];

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .parent()
        .and_then(Path::parent)
        .expect("crates/component sits two levels below the workspace root")
        .to_path_buf();
    for watched in [
        "wit",
        "guest",
        "crates/core",
        "tests/programs",
        "examples/night-refunds",
        "Cargo.lock",
        "Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=GREENLIGHT_WASM_TARGET_DIR");

    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    // OUT_DIR is TARGET/PROFILE/build/PKG-HASH/out: keep the wasm build next
    // to the native one so one cache directory holds both.
    let target_dir = env::var_os("GREENLIGHT_WASM_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(|| out_dir.ancestors().nth(4).map(|t| t.join("wasm")))
        .expect("OUT_DIR has the layout cargo documents");

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args([
            "build",
            "--target",
            "wasm32-wasip2",
            "--profile",
            "guest",
            "-p",
            "greenlight-guest",
            "-p",
            "greenlight-test-hostile",
            "-p",
            "greenlight-example-night-refunds",
            "--target-dir",
        ])
        .arg(&target_dir);
    for var in SCRUB {
        cmd.env_remove(var);
    }
    for (key, _) in env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_FEATURE_") || key.starts_with("CARGO_CFG_") {
            cmd.env_remove(key.as_ref());
        }
    }
    let status = cmd
        .status()
        .expect("cannot run cargo to build the component");
    assert!(
        status.success(),
        "building greenlight.wasm failed ({status}); is the target installed? `rustup target add wasm32-wasip2`"
    );
    let dir = target_dir.join("wasm32-wasip2").join("guest");
    for (var, file) in [
        ("GREENLIGHT_WASM_PATH", "greenlight_guest.wasm"),
        (
            "GREENLIGHT_HOSTILE_WASM_PATH",
            "greenlight_test_hostile.wasm",
        ),
        (
            "GREENLIGHT_NIGHT_REFUNDS_WASM_PATH",
            "greenlight_example_night_refunds.wasm",
        ),
    ] {
        let path = dir.join(file);
        assert!(
            path.exists(),
            "the build did not produce {}",
            path.display()
        );
        println!("cargo:rustc-env={var}={}", path.display());
    }
}
