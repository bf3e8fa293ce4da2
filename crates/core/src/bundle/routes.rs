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
        let compiled = Route::compile(rc).and_then(|r| {
            if seen.insert((r.method.clone(), rc.path.clone())) {
                Ok(r)
            } else {
                Err(vec!["the route is defined twice".to_owned()])
            }
        });
        let mapping = Mapping {
            label: format!("route `{} {}`", rc.method, rc.path),
            at: find_at(cfg_text, &format!("\"{}\"", rc.path)),
            entity_type: &rc.resource.entity_type,
            action: &rc.action,
        };
        routes.extend(mapping.keep(compiled, problems));
    }
    let mut tools = std::collections::BTreeSet::new();
    for tc in &config.tools {
        let compiled = Route::compile_tool(tc).and_then(|r| {
            if tools.insert(tc.name.clone()) {
                Ok(r)
            } else {
                Err(vec!["the tool is mapped twice".to_owned()])
            }
        });
        let mapping = Mapping {
            label: format!("tool `{}`", tc.name),
            at: find_at(cfg_text, &format!("\"{}\"", tc.name)),
            entity_type: &tc.resource.entity_type,
            action: &tc.action,
        };
        routes.extend(mapping.keep(compiled, problems));
    }
    routes
}

/// One `[[routes]]` or `[[tools]]` entry, as its problems are reported.
struct Mapping<'a> {
    label: String,
    at: Option<(u32, u32)>,
    entity_type: &'a str,
    action: &'a str,
}

impl Mapping<'_> {
    /// The compiled route when it and the entry's resource type and action
    /// are sound; otherwise nothing, and every problem reported.
    fn keep(self, compiled: Result<Route, Vec<String>>, problems: &mut Problems) -> Option<Route> {
        let (route, mut errs) = match compiled {
            Ok(r) => (Some(r), Vec::new()),
            Err(e) => (None, e),
        };
        if !valid_entity_type(self.entity_type) {
            errs.push(format!(
                "resource type `{}` is not a Cedar entity type name",
                self.entity_type
            ));
        }
        if self.action.is_empty() {
            errs.push("the action is empty".to_owned());
        }
        if errs.is_empty() {
            return route;
        }
        for e in errs {
            problems.add(
                ProblemKind::InvalidConfig,
                CONFIG_FILE,
                self.at,
                format!("{}: {e}", self.label),
            );
        }
        None
    }
}
