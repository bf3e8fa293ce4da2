//! Greenlight's action tokens: once, window, and every way one is refused.

use super::*;

/// The `typ` Greenlight's action tokens carry (written out here, not taken
/// from the engine).
pub const ACTION_TYP: &str = "greenlight-action+jwt";

/// Adds this group's vectors, in order.
pub fn add(ctx: &Ctx, v: &mut Vectors) {
    let attacker = &ctx.attacker;
    let ed = &ctx.ed;
    let gl = &ctx.gl;
    let del_digest = digest("thing.delete", "Thing", "t-1", json!({}));
    let action_claims = |over: Value| {
        merge(
            json!({
                "iss": "https://greenlight.test", "aud": "https://api.test", "sub": "bob",
                "client_id": "cli", "iat": NOW - 10, "exp": NOW + 120, "jti": "at-1",
                "scope": "things:write", "act_digest": del_digest, "grant": "once",
                "approval_id": "apr-1",
                "sub_id": { "format": "iss_sub", "iss": "https://ed.example", "sub": "bob" },
            }),
            over,
        )
    };
    let del = |t: &str| http("POST", "/things/t-1/delete", Some(t), None);
    let access_claims = test_claims("https://ed.example", json!({}));
    let access = ed.sign("at+jwt", &access_claims);
    v.add(
        "action-required-for-delete",
        "deleting a thing needs an admin's approval",
        TOK,
        del(&access),
        challenge(
            "https://api.test",
            principal(&access_claims),
            action("thing.delete", "Thing", "t-1", json!({})),
            json!({
            "approvers": ["group:admins"], "quorum": 1, "ttl_seconds": 900, "grant": "once",
            "window_seconds": 0, "reason_required": false, "message": "" }),
        ),
        vec!["thing-delete"],
    );
    let once = gl.sign(ACTION_TYP, &action_claims(json!({})));
    v.add(
        "action-once-allowed-with-consume",
        "a valid once action token allows and tells the host to consume its jti",
        TOK,
        del(&once),
        allow(
            principal(&action_claims(json!({}))),
            action("thing.delete", "Thing", "t-1", json!({})),
            json!({ "token_id": "at-1", "expires_at": NOW + 120 }),
            Some("apr-1"),
        ),
        vec!["thing-delete"],
    );
    v.add(
        "action-token-other-resource",
        "an action token used for another resource does not match its digest",
        TOK,
        http("POST", "/things/t-2/delete", Some(&once), None),
        deny(
            "action-token-digest-mismatch",
            "the action token was issued for another action than `thing.delete` on `Thing::t-2`",
        ),
        vec![],
    );
    v.add(
        "action-token-other-params",
        "an action token used with other parameters does not match its digest",
        TOK,
        http_q(
            "POST",
            "/things/t-1/delete",
            "reason=cleanup",
            Some(&once),
            None,
        ),
        deny(
            "action-token-digest-mismatch",
            "the action token was issued for another action than `thing.delete` on `Thing::t-1`",
        ),
        vec![],
    );
    let old = gl.sign(
        ACTION_TYP,
        &action_claims(json!({ "iat": NOW - 900, "exp": NOW - 300 })),
    );
    v.add(
        "action-token-expired",
        "an expired action token is denied",
        TOK,
        del(&old),
        deny(
            "token-expired",
            &format!("the action token expired at {}", NOW - 300),
        ),
        vec![],
    );
    let foreign = gl.sign(
        ACTION_TYP,
        &action_claims(json!({ "iss": "https://greenlight.evil" })),
    );
    v.add(
        "action-token-wrong-issuer",
        "an action token from another Greenlight is not trusted",
        TOK,
        del(&foreign),
        deny(
            "token-unknown-issuer",
            "issuer `https://greenlight.evil` is not trusted",
        ),
        vec![],
    );
    let forged = attacker.sign_with(
        json!({ "typ": ACTION_TYP, "kid": "gl-1" }),
        &action_claims(json!({})),
    );
    v.add(
        "action-token-forged",
        "an action token signed by another key is denied",
        TOK,
        del(&forged),
        deny("token-bad-signature", "the signature does not verify"),
        vec![],
    );
    let no_digest = gl.sign(ACTION_TYP, &action_claims(json!({ "act_digest": null })));
    v.add(
        "action-token-without-digest",
        "an action token without act_digest is invalid",
        TOK,
        del(&no_digest),
        deny("action-token-invalid", "action tokens carry `act_digest`"),
        vec![],
    );
    let share_params = json!({ "with": "carol" });
    let share_digest = digest("thing.share", "Thing", "t-1", share_params.clone());
    v.add(
        "action-window-required",
        "sharing needs the owner's approval, granted for a window",
        TOK,
        http(
            "POST",
            "/things/t-1/share",
            Some(&access),
            Some(share_params.clone()),
        ),
        challenge(
            "https://api.test",
            principal(&access_claims),
            action("thing.share", "Thing", "t-1", share_params.clone()),
            json!({
            "approvers": ["user:owner"], "quorum": 1, "ttl_seconds": 900, "grant": "window",
            "window_seconds": 600, "reason_required": false, "message": "" }),
        ),
        vec!["thing-share"],
    );
    let window = gl.sign(
        ACTION_TYP,
        &action_claims(json!({ "act_digest": share_digest, "grant": "window", "jti": "at-2" })),
    );
    v.add(
        "action-window-allowed-without-consume",
        "a window action token allows without consuming",
        TOK,
        http(
            "POST",
            "/things/t-1/share",
            Some(&window),
            Some(share_params.clone()),
        ),
        allow(
            principal(&action_claims(json!({}))),
            action("thing.share", "Thing", "t-1", share_params.clone()),
            Value::Null,
            Some("apr-1"),
        ),
        vec!["thing-share"],
    );
}
