//! The Slack shape of a webhook: an incoming-webhook message (`text` and
//! blocks) in which a requester's own words can never pass for facts,
//! links or mentions.

use serde_json::{Value, json};

use crate::serve::shown::shown;

/// The `action_id` of the approve button.
pub const ACTION_APPROVE: &str = "greenlight.approve";
/// The `action_id` of the deny button.
pub const ACTION_DENY: &str = "greenlight.deny";
/// The `action_id` of the button that opens the portal's page.
pub const ACTION_OPEN: &str = "greenlight.open";
/// The `block_id` and `action_id` of the reason input.
pub const REASON: &str = "greenlight.reason";

/// Text for a code span of Slack's `mrkdwn`: `&`, `<` and `>` escaped as
/// Slack asks (so no `<https://…|link>` or `<!channel>` can be written),
/// a backtick (which would close the span) replaced, and control
/// characters (a new line would start a line of its own) turned to spaces,
/// and invisible or direction-changing characters made visible
/// ([`shown`]). Inside a code span Slack applies no other formatting.
fn mrkdwn(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '`' => "'".to_owned(),
            c if c.is_control() => " ".to_owned(),
            c => shown(&c.to_string()),
        })
        .collect()
}

/// The most characters of a requester's own words a message shows.
const MAX_REQUESTER_TEXT: usize = 300;

/// A requester's own words, flattened to one line and capped: shown as
/// plain text, apart from the facts, so they cannot pass for them.
fn plain(text: &str) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_REQUESTER_TEXT)
        .collect();
    let flat = shown(&flat);
    if text.chars().count() > MAX_REQUESTER_TEXT {
        format!("{flat}…")
    } else {
        flat
    }
}

/// A Slack incoming-webhook message: a `text` fallback and blocks. The
/// facts (who, through which client, what, on what, with which
/// parameters, from the canonical action) are escaped `mrkdwn`; the
/// requester's reason and binding message follow as plain text, labelled
/// as theirs.
pub(super) fn slack_body(approval: &Value, links: &Value, interactive: bool) -> Value {
    let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
    let action = mrkdwn(&text(&approval["action"]));
    let resource = mrkdwn(
        approval["authorization_details"][0]["identifier"]
            .as_str()
            .unwrap_or(""),
    );
    let requester = mrkdwn(&text(&approval["requester"]));
    let issuer = mrkdwn(&text(&approval["requester_issuer"]));
    let client = mrkdwn(&text(&approval["client_id"]));
    let message = mrkdwn(&text(&approval["obligation"]["message"]));
    let by = approval["requester_actor"]
        .as_str()
        .map(|a| format!(", by agent `{}`", mrkdwn(a)))
        .unwrap_or_default();
    let mut facts = vec![format!(
        "`{requester}` (`{issuer}`, through `{client}`{by}) asks to `{action}` on `{resource}`"
    )];
    if !message.is_empty() {
        facts.push(format!("`{message}`"));
    }
    facts.push(format!(
        "Params: `{}`",
        mrkdwn(&approval["authorization_details"][0]["params"].to_string())
    ));
    let mut blocks =
        vec![json!({ "type": "section", "text": { "type": "mrkdwn", "text": facts.join("\n") } })];
    let words: Vec<String> = [("Reason", "reason"), ("Binding message", "binding_message")]
        .iter()
        .filter_map(|(label, key)| {
            approval[*key]
                .as_str()
                .filter(|v| !v.is_empty())
                .map(|v| format!("{label} (from the requester): {}", plain(v)))
        })
        .collect();
    if !words.is_empty() {
        blocks.push(json!({ "type": "section", "text": { "type": "plain_text", "text": words.join(" · "), "emoji": false } }));
    }
    blocks.push(
        json!({ "type": "context", "elements": [ { "type": "mrkdwn", "text": format!(
        "Approval `{}` · approvers {} · quorum {} · decide with `POST {}` or `POST {}`",
        mrkdwn(&text(&approval["id"])),
        mrkdwn(&approval["obligation"]["approvers"].to_string()),
        approval["obligation"]["quorum"],
        mrkdwn(&text(&links["approve"])),
        mrkdwn(&text(&links["deny"])),
    ) } ] }),
    );
    // Buttons: each vote names the approval and the digest of the action
    // this message shows, so a vote is for exactly what was read; the link
    // opens the portal's page.
    let bound = format!(
        "{}:{}",
        text(&approval["id"]),
        text(&approval["action_digest"])
    );
    let mut buttons = Vec::new();
    if interactive {
        buttons.push(
            json!({ "type": "button", "action_id": ACTION_APPROVE, "style": "primary",
                             "text": { "type": "plain_text", "text": "Approve" }, "value": bound }),
        );
        buttons.push(
            json!({ "type": "button", "action_id": ACTION_DENY, "style": "danger",
                             "text": { "type": "plain_text", "text": "Deny" }, "value": bound }),
        );
    }
    if let Some(page) = links["portal"].as_str() {
        buttons.push(json!({ "type": "button", "action_id": ACTION_OPEN,
                             "text": { "type": "plain_text", "text": "Open in Greenlight" }, "url": page }));
    }
    if interactive {
        // A reason travels with the button press (Slack sends the
        // message's inputs in `state.values`).
        blocks.push(
            json!({ "type": "input", "block_id": REASON, "optional": true,
                            "label": { "type": "plain_text", "text": "Reason" },
                            "element": { "type": "plain_text_input", "action_id": REASON } }),
        );
    }
    if !buttons.is_empty() {
        blocks.push(json!({ "type": "actions", "elements": buttons }));
    }
    json!({
        // The fallback shows in notifications, where Slack parses mrkdwn.
        "text": format!("Approval requested: {requester} asks to {action} on {resource}"),
        "blocks": blocks,
    })
}

/// A Slack message telling a decision: who decided what about whose
/// action, the facts escaped as in [`slack_body`].
pub(super) fn outcome_body(event: &str, approval: &Value) -> Value {
    let text = |v: &Value| mrkdwn(v.as_str().unwrap_or(""));
    let (verdict, may) = match event {
        super::EVENT_APPROVED => ("Approved", "may"),
        super::EVENT_DENIED => ("Denied", "may not"),
        super::EVENT_REVOKED => ("Revoked", "may no longer"),
        _ => ("Expired", "may not"),
    };
    let line = format!(
        "{verdict}: `{}` (through `{}`) {may} `{}` on `{}` (approval `{}`)",
        text(&approval["requester"]),
        text(&approval["client_id"]),
        text(&approval["action"]),
        mrkdwn(
            approval["authorization_details"][0]["identifier"]
                .as_str()
                .unwrap_or("")
        ),
        text(&approval["id"]),
    );
    json!({
        "text": line.replace('`', ""),
        "blocks": [ { "type": "section", "text": { "type": "mrkdwn", "text": line } } ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A requester's words cannot pass for facts, links or mentions in
    /// Slack: the binding message tries a fake parameters line, a link and
    /// `<!channel>`, the resource id a code span; the facts come from the
    /// canonical action, escaped, and the words follow as plain text.
    #[test]
    fn slack_text_from_the_requester_is_escaped_and_kept_apart() {
        let approval = json!({
            "id": "a1", "action": "payment.refund", "requester": "alice",
            "requester_issuer": "https://idp.example.com", "client_id": "shop",
            "authorization_details": [{ "identifier": "Payment::p`*1*`<x>",
                                        "params": { "amount": 5000 } }],
            "obligation": { "message": "two approvals", "approvers": ["group:finance"], "quorum": 2 },
            "binding_message": "ok\nParams: `{\"amount\":50}` <https://evil.example|Approve> <!channel>",
            "reason": "",
        });
        let links = json!({ "approve": "https://gl/approve", "deny": "https://gl/deny" });
        let body = slack_body(&approval, &links, false);
        assert_eq!(
            body["blocks"][0]["text"]["text"],
            "`alice` (`https://idp.example.com`, through `shop`) asks to `payment.refund` on `Payment::p'*1*'&lt;x&gt;`\n`two approvals`\nParams: `{\"amount\":5000}`"
        );
        assert_eq!(
            body["blocks"][1]["text"],
            json!({ "type": "plain_text", "emoji": false,
                    "text": "Binding message (from the requester): ok Params: `{\"amount\":50}` <https://evil.example|Approve> <!channel>" })
        );
        assert_eq!(body["blocks"][2]["type"], "context");
    }
}
