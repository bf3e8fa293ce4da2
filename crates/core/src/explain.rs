//! One request's decision with the reasons behind it, for
//! `greenlight explain`: which policies applied, which conditions failed,
//! and which policy's annotations an approval asks for.

use greenlight_types::{AccessRequest, Decision, Denial, HttpRequest, Verdict};

use crate::engine::{Engine, Target, bearer};
use crate::policy::Query;
use crate::policy::entities::Uid;
use crate::policy::trace::PolicyTrace;
use crate::token::Verified;

/// A decision and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    /// The decision, exactly as the request gets it.
    pub decision: Decision,
    /// Who asked for what, when the request got as far as the policies.
    pub asked: Option<Asked>,
    /// Each policy's part, by id; `Err` with why no policy was evaluated
    /// (the request was refused before them, or does not fit).
    pub policies: Result<Vec<PolicyTrace>, String>,
    /// The policy whose annotations an approval asks for.
    pub obligation_from: Option<String>,
}

/// Who asked for what, as Cedar sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Asked {
    /// The principal's entity.
    pub principal: String,
    /// The action's entity.
    pub action: String,
    /// The resource's entity.
    pub resource: String,
}

impl Engine {
    /// Explains the decision of an HTTP request at `now`.
    pub fn explain_http(&self, req: &HttpRequest, now: u64) -> Explanation {
        self.explain_http_by(req, now, &|r| self.verify_token(bearer(&r.headers)?, now))
    }

    /// Explains the decision of an AuthZEN-shaped request at `now`.
    pub fn explain(&self, req: &AccessRequest, now: u64) -> Explanation {
        self.explain_by(req, now, &|r| self.verify_token(&r.token, now))
    }

    /// [`Self::explain_http`] with `who` answering for the credentials.
    pub(crate) fn explain_http_by(
        &self,
        req: &HttpRequest,
        now: u64,
        who: &dyn Fn(&HttpRequest) -> Result<Verified, Denial>,
    ) -> Explanation {
        self.explained(self.http_target(req, who), now)
    }

    /// [`Self::explain`] with `who` answering for the token.
    pub(crate) fn explain_by(
        &self,
        req: &AccessRequest,
        now: u64,
        who: &dyn Fn(&AccessRequest) -> Result<Verified, Denial>,
    ) -> Explanation {
        let found = self
            .access_target(req, true)
            .and_then(|target| Ok((who(req)?, target)));
        self.explained(found, now)
    }

    fn explained(&self, found: Result<(Verified, Target), Denial>, now: u64) -> Explanation {
        let (verified, target) = match found {
            Ok(f) => f,
            Err(d) => {
                return Explanation {
                    decision: self.denied(d),
                    asked: None,
                    policies: Err("the request was refused before them".to_owned()),
                    obligation_from: None,
                };
            }
        };
        let policies = &self.bundle().policies;
        let principal_id = crate::policy::entity_id(&verified.principal, self.home());
        let asked = Asked {
            principal: Uid {
                kind: verified.principal.entity_type.clone(),
                id: principal_id,
            }
            .to_string(),
            action: Uid {
                kind: "Action".to_owned(),
                id: target.action.name.clone(),
            }
            .to_string(),
            resource: Uid {
                kind: target.action.resource_type.clone(),
                id: target.action.resource_id.clone(),
            }
            .to_string(),
        };
        if let Some(d) = self.before_policies(&verified, &target.action) {
            return Explanation {
                decision: self.denied(d),
                asked: Some(asked),
                policies: Err("the request was refused before them".to_owned()),
                obligation_from: None,
            };
        }
        let decision = self.decide(&verified, target.clone(), now);
        let traces = policies.trace(
            Query {
                principal: &verified.principal,
                home: self.home(),
                action: &target.action.name,
                resource_type: &target.action.resource_type,
                resource_id: &target.action.resource_id,
                resource_attrs: target.resource_attrs.clone(),
                context: target.context.clone(),
                entities: &target.entities,
                principal_entity: Some(&verified.principal_entity),
            },
            &decision.reasons,
        );
        let obligation_from = match &decision.verdict {
            Verdict::ApprovalRequired(c) => {
                policies.obligation_source(&decision.reasons, &c.obligation)
            }
            _ => None,
        };
        Explanation {
            decision,
            asked: Some(asked),
            policies: traces,
            obligation_from,
        }
    }
}

/// The decision in a line: its verdict and what it carries.
fn verdict_line(d: &Decision) -> String {
    let by = if d.reasons.is_empty() {
        String::new()
    } else {
        format!(" (by {})", d.reasons.join(", "))
    };
    match &d.verdict {
        Verdict::Allow(_) => format!("allow{by}"),
        Verdict::Deny(den) => format!("deny {}: {}{by}", den.code.as_str(), den.message),
        Verdict::StepUpRequired(s) => format!("step-up-required: {}{by}", s.message),
        Verdict::ApprovalRequired(c) => {
            let o = &c.obligation;
            let approvers: Vec<String> = o.approvers.iter().map(ToString::to_string).collect();
            format!(
                "approval-required: {} of {}, grant {}, ttl {} s{by}",
                o.quorum,
                approvers.join(" or "),
                o.grant.as_str(),
                o.ttl_seconds
            )
        }
    }
}

/// The explanation as text, one policy per paragraph.
pub fn render(e: &Explanation) -> String {
    let mut out = String::new();
    if let Some(a) = &e.asked {
        out.push_str(&format!(
            "request:  {} asks {} on {}\n",
            a.principal, a.action, a.resource
        ));
    }
    out.push_str(&format!("decision: {}\n", verdict_line(&e.decision)));
    match &e.policies {
        Err(why) => out.push_str(&format!("\nno policy was evaluated: {why}\n")),
        Ok(policies) => {
            for p in policies {
                out.push('\n');
                out.push_str(&render_policy(p));
            }
        }
    }
    if let Some(id) = &e.obligation_from {
        let annotations = match &e.policies {
            Ok(p) => p
                .iter()
                .find(|t| &t.id == id)
                .map(|t| {
                    t.annotations
                        .iter()
                        .map(|(k, v)| format!("@{k}({v:?})"))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default(),
            Err(_) => String::new(),
        };
        out.push_str(&format!(
            "\nthe approval asked for is `{id}`'s: {annotations}\n"
        ));
    }
    out
}

fn render_policy(p: &PolicyTrace) -> String {
    let effect = if p.permit { "permit" } else { "forbid" };
    let state = match (&p.satisfied, p.determining) {
        (Ok(true), true) => "satisfied, determines the decision".to_owned(),
        (Ok(true), false) => "satisfied, but does not determine the decision".to_owned(),
        (Ok(false), _) => "not satisfied".to_owned(),
        // Greenlight counts a forbid Cedar cannot evaluate as satisfied.
        (Err(e), true) if !p.permit => {
            format!("cannot be evaluated, so counts as satisfied and determines the decision: {e}")
        }
        (Err(e), false) if !p.permit => {
            format!("cannot be evaluated, so counts as satisfied: {e}")
        }
        (Err(e), _) => format!("cannot be evaluated, so does not count: {e}"),
    };
    let mut out = format!("{effect} `{}`: {state}\n", p.id);
    for (k, v) in &p.annotations {
        out.push_str(&format!("  @{k}({v:?})\n"));
    }
    match &p.in_scope {
        Ok(true) => out.push_str("  scope: matches\n"),
        Ok(false) => out.push_str("  scope: does not match (principal, action or resource)\n"),
        Err(e) => out.push_str(&format!("  scope: cannot be evaluated: {e}\n")),
    }
    for c in &p.conditions {
        // `holds` says whether the condition lets the policy apply: a
        // `when` that is true, an `unless` that is false.
        let said = match &c.holds {
            Ok(lets) => {
                let value = if c.kind == "unless" { !lets } else { *lets };
                if *lets {
                    format!("{value}")
                } else {
                    format!("{value}: FAILS")
                }
            }
            Err(e) => format!("cannot be evaluated: {e}"),
        };
        out.push_str(&format!("  {}: {said}\n", c.text));
    }
    out
}
