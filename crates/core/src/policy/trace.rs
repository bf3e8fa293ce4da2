//! Why each policy did or did not apply to one request: its scope, then
//! each of its conditions on its own, for `greenlight explain`.
//!
//! Each policy is evaluated alone, then again as its scope only and as its
//! scope with one condition, each as a permit (so a forbid's parts read
//! the same way). A part that cannot be evaluated (an attribute the
//! request does not give, in a bundle without a schema) says so: Cedar
//! skips such a permit, and Greenlight counts such a forbid as satisfied.

use cedar_policy::{
    Authorizer, Decision as CedarDecision, Effect, Entities, Policy, PolicyId, PolicySet, Request,
};
use serde_json::Value;

use super::{OBLIGATION_ANNOTATIONS, Policies, Query, STEP_UP_ANNOTATIONS};

/// What one condition (`when` or `unless`) of a policy said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionTrace {
    /// `when` or `unless`.
    pub kind: String,
    /// The condition in Cedar syntax, as Cedar prints it.
    pub text: String,
    /// Whether it let the policy apply: `Ok(true)` when it holds (a `when`
    /// true, an `unless` false), `Err` with why it could not be evaluated.
    pub holds: Result<bool, String>,
}

/// What one policy said about the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyTrace {
    /// The policy's id.
    pub id: String,
    /// `true` for a permit, `false` for a forbid.
    pub permit: bool,
    /// Whether the request is in its scope (principal, action, resource).
    pub in_scope: Result<bool, String>,
    /// Each condition in order, evaluated only when the scope matched.
    pub conditions: Vec<ConditionTrace>,
    /// Whether the whole policy is satisfied (scope and every condition),
    /// evaluated alone; `Err` with why it could not be evaluated.
    pub satisfied: Result<bool, String>,
    /// Whether it is one of the policies that determined the decision (a
    /// satisfied permit is not when a forbid is satisfied, nor one with
    /// approvers beside a plain one).
    pub determining: bool,
    /// Its approval and sign-in annotations, as written.
    pub annotations: Vec<(String, String)>,
}

/// Whether a policy given as JSON (its effect made a permit) applies to
/// the request: `Err` with Cedar's evaluation error.
fn permits(id: &str, est: Value, request: &Request, entities: &Entities) -> Result<bool, String> {
    let policy = Policy::from_json(Some(PolicyId::new(id)), est)
        .map_err(|e| format!("cannot be taken apart: {e}"))?;
    let mut set = PolicySet::new();
    set.add(policy)
        .map_err(|e| format!("cannot be taken apart: {e}"))?;
    let response = Authorizer::new().is_authorized(request, &set, entities);
    if let Some(e) = response.diagnostics().errors().next() {
        return Err(e.to_string());
    }
    Ok(response.decision() == CedarDecision::Allow)
}

/// Text on one line: runs of whitespace as one space.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The condition part of a one-condition policy as Cedar prints it:
/// from its `when` or `unless` on.
fn printed_condition(est: &Value, kind: &str) -> String {
    Policy::from_json(None, est.clone())
        .ok()
        .and_then(|p| p.to_cedar())
        .and_then(|text| {
            text.rfind(&format!(") {kind}"))
                .map(|at| one_line(text[at + 2..].trim_end_matches(';')))
        })
        .unwrap_or_else(|| format!("{kind} {{ … }}"))
}

/// `text` without its `//` comments (strings kept whole).
fn without_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                '\\' => out.extend(chars.next()),
                '"' => in_string = false,
                _ => {}
            }
        } else if c == '/' && chars.peek() == Some(&'/') {
            for c in chars.by_ref() {
                if c == '\n' {
                    out.push('\n');
                    break;
                }
            }
        } else {
            in_string = c == '"';
            out.push(c);
        }
    }
    out
}

/// The `when { … }` and `unless { … }` clauses of a policy's source text,
/// in order, as written (on one line): scanned outside strings and
/// comments, braces matched.
fn written_conditions(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    let mut depth = 0usize;
    let mut start: Option<usize> = None;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'{' => depth += 1,
            b'}' => {
                depth = depth.saturating_sub(1);
                if depth == 0
                    && let Some(s) = start.take()
                {
                    found.push(one_line(&without_comments(&text[s..=i])));
                }
            }
            b'w' | b'u' if depth == 0 && start.is_none() => {
                let rest = &text[i..];
                let word = ["when", "unless"].into_iter().find(|w| {
                    rest.starts_with(w)
                        && rest[w.len()..].trim_start().starts_with('{')
                        && (i == 0
                            || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'))
                });
                if word.is_some() {
                    start = Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    found
}

impl Policies {
    /// Each policy's trace for `q`, by id, `determining` naming those that
    /// determined the decision; `Err` when the request itself does not fit
    /// (then no policy is evaluated).
    pub fn trace(&self, q: Query<'_>, determining: &[String]) -> Result<Vec<PolicyTrace>, String> {
        let (request, entities) = self.cedar_request(q)?;
        let mut traces = Vec::new();
        let mut policies: Vec<&Policy> = self.set.policies().collect();
        policies.sort_by_key(|p| p.id().to_string());
        for policy in policies {
            let id = policy.id().to_string();
            let mut est = policy
                .to_json()
                .map_err(|e| format!("policy `{id}` cannot be taken apart: {e}"))?;
            est["effect"] = Value::from("permit");
            let conditions: Vec<Value> = est["conditions"].as_array().cloned().unwrap_or_default();
            let mut scope = est.clone();
            scope["conditions"] = Value::Array(Vec::new());
            let in_scope = permits(&id, scope, &request, &entities);
            let satisfied = permits(&id, est.clone(), &request, &entities);
            let mut traced = Vec::new();
            if in_scope == Ok(true) {
                // As written where the source says as many; else as Cedar
                // prints them.
                let written = policy
                    .to_cedar()
                    .map(|t| written_conditions(&t))
                    .filter(|w| w.len() == conditions.len());
                for (n, c) in conditions.into_iter().enumerate() {
                    let kind = c["kind"].as_str().unwrap_or("when").to_owned();
                    let mut one = est.clone();
                    one["conditions"] = Value::Array(vec![c]);
                    let text = written
                        .as_ref()
                        .and_then(|w| w.get(n).cloned())
                        .unwrap_or_else(|| printed_condition(&one, &kind));
                    traced.push(ConditionTrace {
                        text,
                        kind,
                        holds: permits(&id, one, &request, &entities),
                    });
                }
            }
            let annotations = policy
                .annotations()
                .filter(|(k, _)| {
                    OBLIGATION_ANNOTATIONS.contains(k) || STEP_UP_ANNOTATIONS.contains(k)
                })
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            traces.push(PolicyTrace {
                determining: determining.contains(&id),
                satisfied,
                permit: policy.effect() == Effect::Permit,
                id,
                in_scope,
                conditions: traced,
                annotations,
            });
        }
        Ok(traces)
    }

    /// The id of the first of `reasons` whose obligation is `obligation`:
    /// the policy whose annotations an approval asks for.
    pub fn obligation_source(
        &self,
        reasons: &[String],
        obligation: &greenlight_types::Obligation,
    ) -> Option<String> {
        reasons
            .iter()
            .find(|id| self.obligations.get(*id) == Some(obligation))
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::written_conditions;

    #[test]
    fn conditions_are_found_as_written_outside_strings_and_comments() {
        let text = r#"@id("when { not this }") @message("unless {x}")
// when { nor this }
permit (principal, action == Action::"when", resource)
when { context.a == "}" && context.b.contains("{") }
unless {
  // a comment } inside
  principal.whenever == "unless { }"
};"#;
        assert_eq!(
            written_conditions(text),
            vec![
                r#"when { context.a == "}" && context.b.contains("{") }"#,
                r#"unless { principal.whenever == "unless { }" }"#,
            ]
        );
    }
}
