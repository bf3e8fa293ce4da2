//! `[[routes]]` and `[[tools]]`: each compiled, every problem located.

use super::{CONFIG_FILE, Problems, find_at};
use crate::config::Config;
use crate::policy::valid_entity_type;
use crate::routes::Route;
use greenlight_types::ProblemKind;

/// The compiled routes, a tool's mapping among them; one with problems is
/// left out and reported.
pub(super) fn routes(config: &Config, cfg_text: &str, problems: &mut Problems) -> Vec<Route> {
    let mut routes = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for rc in &config.routes {
        let at = find_at(cfg_text, &format!("\"{}\"", rc.path));
        let mut errs = match Route::compile(rc) {
            Ok(r) => {
                if seen.insert((r.method.clone(), rc.path.clone())) {
                    routes.push(r);
                    Vec::new()
                } else {
                    vec!["the route is defined twice".to_owned()]
                }
            }
            Err(e) => e,
        };
        if !valid_entity_type(&rc.resource.entity_type) {
            errs.push(format!(
                "resource type `{}` is not a Cedar entity type name",
                rc.resource.entity_type
            ));
        }
        if rc.action.is_empty() {
            errs.push("the action is empty".to_owned());
        }
        for e in errs {
            problems.add(
                ProblemKind::InvalidConfig,
                CONFIG_FILE,
                at,
                format!("route `{} {}`: {e}", rc.method, rc.path),
            );
        }
    }

    let mut tools = std::collections::BTreeSet::new();
    for tc in &config.tools {
        let at = find_at(cfg_text, &format!("\"{}\"", tc.name));
        let mut errs = match Route::compile_tool(tc) {
            Ok(r) => {
                if tools.insert(tc.name.clone()) {
                    routes.push(r);
                    Vec::new()
                } else {
                    vec!["the tool is mapped twice".to_owned()]
                }
            }
            Err(e) => e,
        };
        if !valid_entity_type(&tc.resource.entity_type) {
            errs.push(format!(
                "resource type `{}` is not a Cedar entity type name",
                tc.resource.entity_type
            ));
        }
        if tc.action.is_empty() {
            errs.push("the action is empty".to_owned());
        }
        for e in errs {
            problems.add(
                ProblemKind::InvalidConfig,
                CONFIG_FILE,
                at,
                format!("tool `{}`: {e}", tc.name),
            );
        }
    }
    routes
}
