//! Parameters a route reads are read once, as the application would:
//! a scalar given twice (query or header) is refused, a `list` takes every
//! value, and an encoded `/` in a path variable is refused unless the route
//! allows it. Read straight from route matching, before any token.

use greenlight_core::Engine;
use serde_json::json;

const CONFIG: &str = r#"
[[issuers]]
issuer = "https://idp.example.com"
audience = "https://api.example.com"
algorithms = ["EdDSA"]
jwks = "idp.jwks.json"

[[routes]]
method = "GET"
path = "/docs/{doc_id}"
action = "doc.read"
resource = { type = "Doc", id = "{doc_id}" }
params.tenant = { from = "header.x-tenant", type = "string" }
params.tags = { from = "query.tag", type = "list", required = false }

[[routes]]
method = "GET"
path = "/files/{file_id}"
action = "file.read"
encoded_slashes = true
resource = { type = "File", id = "{file_id}" }
"#;

const POLICY: &str = r#"
@id("read") permit (principal, action, resource);
"#;

const JWKS: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"I2AjEqUYOqUP6_eOvTM6THsPlfCVJVszMQh_05UWsT4","kid":"k1","alg":"EdDSA"}]}"#;

fn engine() -> Engine {
    let files: Vec<(String, String)> = [
        ("greenlight.toml", CONFIG),
        ("policy.cedar", POLICY),
        ("idp.jwks.json", JWKS),
    ]
    .iter()
    .map(|(n, c)| ((*n).to_owned(), (*c).to_owned()))
    .collect();
    Engine::load(&files).expect("the bundle loads")
}

/// What the route matching a GET of `path?query` with `headers` reads:
/// its typed parameters and the resource id, or why the request is refused.
fn read(path: &str, query: &str, headers: &[(&str, &str)]) -> Result<String, String> {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let engine = engine();
    let body = json!({});
    let view = greenlight_core::routes::RequestView {
        query,
        headers: &headers,
        body: Some(&body),
    };
    let routes = &engine.bundle().routes;
    match greenlight_core::routes::find(routes, "GET", path) {
        Some(found) => {
            let m = greenlight_core::routes::read(found, &view)?;
            Ok(format!(
                "{} {}",
                serde_json::to_string(&m.params).map_err(|e| e.to_string())?,
                m.resource_id
            ))
        }
        None => Err("no route".to_owned()),
    }
}

#[test]
fn a_header_given_twice_is_refused_once_is_read() {
    assert_eq!(
        read("/docs/d1", "", &[("x-tenant", "acme"), ("X-Tenant", "globex")]),
        Err("parameter `tenant` is given 2 times in the headers; the route reads one (declare `type = \"list\"` for several)".to_owned())
    );
    assert_eq!(
        read("/docs/d1", "", &[("x-tenant", "acme")]),
        Ok(r#"{"tenant":"acme"} d1"#.to_owned())
    );
}

#[test]
fn a_list_takes_every_value_in_order() {
    assert_eq!(
        read(
            "/docs/d1",
            "tag=a&tag=b%20c&other=x",
            &[("x-tenant", "acme")]
        ),
        Ok(r#"{"tags":["a","b c"],"tenant":"acme"} d1"#.to_owned())
    );
}

#[test]
fn an_encoded_slash_is_refused_unless_the_route_allows_it() {
    assert_eq!(
        read("/docs/a%2Fb", "", &[("x-tenant", "acme")]),
        Err("path variable `doc_id` holds an encoded `/` (%2F), which route `GET /docs/{doc_id}` does not allow".to_owned())
    );
    assert_eq!(read("/files/a%2Fb", "", &[]), Ok("{} a/b".to_owned()));
}

#[test]
fn a_path_variable_cannot_be_a_list() {
    let config = CONFIG.replace(
        "params.tags = { from = \"query.tag\", type = \"list\", required = false }",
        "params.tags = { from = \"path.doc_id\", type = \"list\" }",
    );
    let files: Vec<(String, String)> = [
        ("greenlight.toml", config.as_str()),
        ("policy.cedar", POLICY),
        ("idp.jwks.json", JWKS),
    ]
    .iter()
    .map(|(n, c)| ((*n).to_owned(), (*c).to_owned()))
    .collect();
    let err = Engine::load(&files).expect_err("refused").to_string();
    assert!(
        err.contains("parameter `tags`: a path variable holds one value, not a `list`"),
        "{err}"
    );
}

#[test]
fn a_percent_escape_is_exactly_two_hex_digits() {
    // Found by fuzzing (fuzz/regressions/http/percent-plus-escape): `%+1`
    // was read as the byte 0x01, a resource the application never names.
    for bad in [
        "/files/pay%+1",
        "/files/pay%-1",
        "/files/pay%1",
        "/files/pay%zz",
        "/files/pay% 1",
    ] {
        assert_eq!(read(bad, "", &[]), Err("no route".to_owned()), "{bad}");
    }
    assert_eq!(read("/files/pay%41%62", "", &[]), Ok("{} payAb".to_owned()));
}
