//! Entity data: the AuthZEN interop Todo bundle's `entities.json` says who
//! a vouched subject is, and a host adds entities for one request; the
//! request may not restate what the data says, nor the host the principal.

use super::*;

/// The AuthZEN interop Todo bundle, with entity data.
const TODO: &str = "tests/authzen-interop/todo";
const MORTY: &str = "CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs";

/// Adds this group's vectors, after every other (they are `extra`).
pub fn add(_ctx: &Ctx, v: &mut Vectors) {
    let who = json!({ "entity_type": "user", "subject": MORTY, "client_id": "todo-backend",
        "scopes": [], "groups": [], "roles": [], "tenant": "", "issuer": "https://idp.example.com" });
    let update = |todo: &str, props: Value, entities: Value| {
        json!({ "vouched": {
            "subject": who,
            "access": { "token": "", "action": "can_update_todo", "resource_type": "todo",
                "resource_id": todo,
                "resource_properties": if props.is_null() { Value::Null } else { Value::from(props.to_string()) },
                "context": null,
                "entities": if entities.is_null() { Value::Null } else { Value::from(entities.to_string()) } },
        }})
    };
    let looked_up = json!([{ "uid": { "type": "todo", "id": "t-2" },
        "attrs": { "ownerID": "morty@the-citadel.com" } }]);
    let mut push = |name, description, request, verdict, reasons: Vec<&'static str>| {
        v.extra.push(Vector {
            name,
            description,
            bundle: TODO,
            keys: Vec::new(),
            request,
            verdict,
            reasons,
        });
    };
    push(
        "entities-data-gives-the-subject-its-role",
        "entity data makes the vouched subject an editor, who may update their own todo",
        update(
            "t-1",
            json!({ "ownerID": "morty@the-citadel.com" }),
            Value::Null,
        ),
        allow(
            who.clone(),
            action("can_update_todo", "todo", "t-1", json!({})),
            Value::Null,
            None,
        ),
        vec!["update-own-todo"],
    );
    push(
        "entities-data-role-does-not-reach-anothers-todo",
        "an editor may not update another's todo",
        update(
            "t-1",
            json!({ "ownerID": "rick@the-citadel.com" }),
            Value::Null,
        ),
        deny(
            "policy-no-permit",
            "no policy permits `can_update_todo` on `todo::t-1`",
        ),
        vec![],
    );
    push(
        "entities-host-gives-the-resource",
        "the host's entity for the resource gives its owner",
        update("t-2", Value::Null, looked_up.clone()),
        allow(
            who.clone(),
            action("can_update_todo", "todo", "t-2", json!({})),
            Value::Null,
            None,
        ),
        vec!["update-own-todo"],
    );
    push(
        "entities-request-restates-the-hosts-resource",
        "the request may not restate an attribute the host's entity gives",
        update(
            "t-2",
            json!({ "ownerID": "morty@the-citadel.com" }),
            looked_up,
        ),
        deny(
            "request-invalid",
            "attribute `ownerID` of the resource todo::\"t-2\" is given by both the request and entity data",
        ),
        vec![],
    );
    push(
        "entities-a-person-takes-nothing-from-the-request",
        "a resource of the principal type takes no attributes from the request",
        json!({ "vouched": {
            "subject": who,
            "access": { "token": "", "action": "can_read_user", "resource_type": "user",
                "resource_id": MORTY, "resource_properties": "{\"email\":\"rick@the-citadel.com\"}",
                "context": null },
        }}),
        deny(
            "request-invalid",
            "the resource user::\"CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs\" is of the principal type: its attributes come from tokens and entity data, not from the request",
        ),
        vec![],
    );
    push(
        "entities-host-may-not-give-the-principal",
        "the host's entities may not restate the principal",
        update(
            "t-1",
            json!({ "ownerID": "rick@the-citadel.com" }),
            json!([{ "uid": { "type": "user", "id": MORTY },
                "parents": [{ "type": "Role", "id": "evil_genius" }] }]),
        ),
        deny(
            "request-invalid",
            "the host's entities may not give the principal (user::\"CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs\"): its facts come from its token",
        ),
        vec![],
    );
}
