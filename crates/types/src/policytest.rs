//! The outcome of a bundle's policy tests (the WIT `test-outcome`).

use serde::{Deserialize, Serialize};

/// The folder of a bundle that holds its tests (`tests/*.toml`); they are
/// not part of the policy, so they do not change the bundle's hash.
pub const TESTS_DIR: &str = "tests";

/// How one policy test went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestOutcome {
    /// `FILE: NAME`.
    pub name: String,
    /// `None` when it passed; otherwise what differed, with the decision
    /// and the policies that determined it.
    pub failure: Option<String>,
}

/// One line for all outcomes: `N passed, M failed`, then each failure.
pub fn summary(outcomes: &[TestOutcome]) -> String {
    let failed: Vec<String> = outcomes
        .iter()
        .filter_map(|o| o.failure.as_ref().map(|f| format!("{}: {f}", o.name)))
        .collect();
    format!(
        "{} passed, {} failed{}{}",
        outcomes.len() - failed.len(),
        failed.len(),
        if failed.is_empty() { "" } else { ": " },
        failed.join("; ")
    )
}
