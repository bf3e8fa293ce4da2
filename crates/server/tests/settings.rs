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
