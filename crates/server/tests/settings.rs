//! `greenlight serve` over real HTTP: `serve --config`: settings that cannot work are refused at start.

use common::server::*;

mod common;

/// Settings that cannot work are refused at start, with the reason.
#[test]
fn bad_settings_are_refused() {
    let check = |text: &str| {
        toml::from_str::<Settings>(text)
            .map_err(|e| e.to_string())
            .and_then(|s| s.check().map_err(|e| e.to_string()))
    };
    assert_eq!(
        check("[[webhooks]]\nurl = \"ftp://x\"").expect_err("scheme"),
        "webhooks[0].url `ftp://x` is not an http(s) URL"
    );
    assert_eq!(
        check("[[webhooks]]\nurl = \"http://x\"\nsecret_env = \"GREENLIGHT_TEST_UNSET_SECRET\"")
            .expect_err("unset"),
        "webhooks[0].secret_env names `GREENLIGHT_TEST_UNSET_SECRET`, which is not set or empty"
    );
    assert_eq!(
        check("[signing]\nrotate_after = 0").expect_err("zero"),
        "signing.rotate_after must be at least 1 second"
    );
    assert_eq!(
        check("[approvals]\ncollect_within = 0").expect_err("zero"),
        "approvals.collect_within must be at least 1 second"
    );
    for zero in ["max_pending = 0", "max_new = 0"] {
        assert_eq!(
            check(&format!("[approvals]\n{zero}")).expect_err("zero"),
            "approvals.max_pending and max_new must be at least 1: 0 would refuse every approval"
        );
    }
    assert_eq!(
        check("[approvals]\nnew_per = 0").expect_err("zero"),
        "approvals.new_per must be at least 1 second"
    );
    assert_eq!(
        check("[[webhooks]]\nurl = \"http://x\"\nbogus = 1").expect_err("unknown field"),
        "TOML parse error at line 3, column 1\n  |\n3 | bogus = 1\n  | ^^^^^\nunknown field `bogus`, expected one of `url`, `secret_env`, `secret_file`, `format`, `attempts`, `timeout`\n"
    );
}

/// A portal that cannot sign anyone in safely is refused: no `openid`
/// scope, no client, an issuer the bundle does not trust, and session
/// cookies that could not be `Secure` (plain HTTP beyond loopback).
#[test]
fn portal_settings_that_cannot_work_are_refused() {
    use greenlight::serve::portal::{Portal, PortalSettings};
    let settings = |text: &str| toml::from_str::<PortalSettings>(text).expect("parses");
    let files = greenlight_host::read_bundle_dir(&root().join("examples/bundle")).expect("bundle");
    let info = greenlight_core::Engine::load(&files)
        .expect("loads")
        .describe();
    let refused = |s: &PortalSettings, url: &str| {
        Portal::new(s, &info, url)
            .map(|_| ())
            .expect_err("refused")
            .to_string()
    };
    let ok = settings("client_id = \"portal\"");
    assert_eq!(
        refused(
            &settings("client_id = \"portal\"\nscopes = \"profile\""),
            "http://127.0.0.1:1"
        ),
        "portal.scopes `profile` must include `openid`: the portal signs people in with OpenID Connect"
    );
    assert_eq!(
        refused(&settings("client_id = \"\""), "http://127.0.0.1:1"),
        "portal.client_id may not be empty"
    );
    assert_eq!(
        refused(
            &settings("client_id = \"portal\"\nissuer = \"https://evil.example\""),
            "http://127.0.0.1:1"
        ),
        "portal.issuer `https://evil.example` is not one of the bundle's issuers"
    );
    assert_eq!(
        refused(
            &settings(
                "client_id = \"portal\"\nclient_secret_env = \"GREENLIGHT_TEST_UNSET_SECRET\""
            ),
            "http://127.0.0.1:1"
        ),
        "portal.client_secret_env names `GREENLIGHT_TEST_UNSET_SECRET`, which is not set or empty"
    );
    for url in ["http://greenlight.example.com", "http://10.0.0.5:8080"] {
        assert_eq!(
            refused(&ok, url),
            "the portal's session cookies must be Secure: serve it at an https:// public URL \
             (--public-url), or on loopback for trying it",
            "{url}"
        );
    }
    for url in [
        "https://greenlight.example.com",
        "http://127.0.0.1:8080",
        "http://localhost:8080",
        "http://[::1]:8080",
    ] {
        Portal::new(&ok, &info, url).expect(url);
    }
}
