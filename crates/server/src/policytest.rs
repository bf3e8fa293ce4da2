//! Policy tests: `greenlight test BUNDLE`, and the tests a swap runs
//! first. The tests are the `*.toml` files in a bundle's `tests/` folder;
//! the component runs them (the WIT `run-tests`, format in
//! `greenlight_core::policytest`), so every host runs them alike.

use std::path::Path;

use anyhow::{Context, bail};
use greenlight_host::{Engine, Policy};
use greenlight_types::TestOutcome;
pub use greenlight_types::policytest::{TESTS_DIR, summary};

/// The test files of a bundle folder (`tests/*.toml`) as `(file name,
/// contents)`, sorted; none when it has no `tests` folder.
pub fn read_files(bundle: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let dir = bundle.join(TESTS_DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    };
    let mut texts = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".toml") && entry.file_type()?.is_file() {
            let text = std::fs::read_to_string(entry.path())
                .with_context(|| format!("cannot read {}", entry.path().display()))?;
            texts.push((name, text));
        }
    }
    texts.sort();
    Ok(texts)
}

/// Runs `tests` against `policy`; `Err` when a file is not a test file or
/// the module fails.
pub fn run(
    policy: &Policy,
    tests: &[(String, String)],
    now: u64,
) -> anyhow::Result<Vec<TestOutcome>> {
    policy.run_tests(tests, now).map_err(anyhow::Error::msg)
}

/// `greenlight test`: runs the tests of the bundle in `bundle` with the
/// shipped component or `component`, printing one line per test and a
/// summary. Returns the exit code: 0 when every test passed, 1 otherwise.
pub fn run_command(
    bundle: &Path,
    component: Option<&Path>,
    now: u64,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<i32> {
    let engine = match component {
        Some(path) => Engine::load(
            &std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
        )?,
        None => Engine::load(greenlight_component::GREENLIGHT_WASM)?,
    };
    let files = greenlight_host::read_bundle_dir(bundle)
        .with_context(|| format!("cannot read bundle {}", bundle.display()))?;
    let tests = read_files(bundle)?;
    if tests.is_empty() {
        bail!(
            "bundle {} has no tests: put them in {}/*.toml",
            bundle.display(),
            bundle.join(TESTS_DIR).display()
        );
    }
    let policy = engine.load_bundle(files)?;
    let outcomes = run(&policy, &tests, now)?;
    for o in &outcomes {
        match &o.failure {
            None => writeln!(out, "ok     {}", o.name)?,
            Some(why) => writeln!(out, "FAILED {}\n       {why}", o.name)?,
        }
    }
    let failed = outcomes.iter().filter(|o| o.failure.is_some()).count();
    writeln!(
        out,
        "\n{} passed, {failed} failed (policy hash {})",
        outcomes.len() - failed,
        policy.policy_hash()
    )?;
    Ok(i32::from(failed > 0))
}
