//! Cedarling 2.6.0 deciding the peer bench's policy on signed access tokens.
//!
//! What Cedarling 2.6 needs, found by reading its source (a helper's probe
//! this session):
//! - `Cedarling::authorize_multi_issuer` is the entry point that takes signed
//!   JWTs; the token is exposed to policies as `context.tokens.<issuer>_<type>`
//!   and there is no principal (Cedar's partial evaluation with the principal
//!   unknown), so the policy leaves `principal` unconstrained.
//! - With signature checks on, a trusted issuer's keys are always fetched over
//!   HTTP when the engine starts (`JwtConfig.jwks` is replaced by the fetched
//!   set; plain http is accepted on loopback only). `engine` serves the key set
//!   from a loopback listener only while `Cedarling::new` runs, then closes it:
//!   every decision measured is offline.
//! - The trusted issuer's `iss` comes from a v2 directory policy store
//!   (`configuration_endpoints.iss`), so one is written to a temporary folder.
//! - Cedarling checks `iss`, `exp` and the signature; it never checks `aud`
//!   (its validator turns the audience check off). Verified tokens are cached
//!   (5 s, 100 entries by default): a repeated token is answered from the
//!   cache, as Greenlight's warm path is.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cedarling::{
    AuthorizationConfig, AuthorizeMultiIssuerRequest, BootstrapConfig, Cedarling, DataStoreConfig,
    EntityData, HttpClientConfig, JwtConfig, LogConfig, LogLevel, LogTypeConfig, PolicyStoreConfig,
    PolicyStoreSource, TokenInput,
};
use jsonwebtoken::Algorithm;
use serde_json::json;

use crate::ISSUER;

/// The token's entity type: the issuer is named `Bank` in the store, so the
/// token is `context.tokens.bank_access_token`.
const TOKEN_TYPE: &str = "Bank::Access_token";
const ACTION: &str = r#"Bank::Action::"Refund""#;

const SCHEMA: &str = r#"namespace Bank {
  entity TrustedIssuer = { issuer_entity_id: { host: String, path: String, protocol: String } };
  entity Access_token = {
    iss: TrustedIssuer,
    exp: Long,
    jti: String,
    token_type: String,
    validated_at: Long,
  } tags Set<String>;
  entity Ledger;
  action "Refund" appliesTo {
    principal: [Access_token],
    resource: [Ledger],
    context: {
      amount: Long,
      tokens: { bank_access_token?: Access_token, total_token_count: Long },
    }
  };
}
"#;

/// The one-line policy, as Cedarling's model has it (no principal).
const POLICY: &str = "permit(principal, action == Bank::Action::\"Refund\", resource is Bank::Ledger) when { context.amount <= 100 };\n";

/// Writes a v2 directory policy store whose one trusted issuer is
/// `ISSUER`, its keys at `jwks_url`.
fn write_store(dir: &Path, jwks_url: &str) {
    std::fs::create_dir_all(dir.join("policies")).expect("store folder");
    let metadata = json!({
        "policy_store_spec_version": 2,
        "cedar_version": "4.4.0",
        "policy_store": { "id": "a1b2c3d4e5f6", "name": "peer-bench", "version": "1.0.0" }
    });
    let issuers = json!({
        TOKEN_TYPE: {
            "type": "jwt",
            "issuer": "Bank",
            "configuration_endpoints": { "jwks": jwks_url, "iss": ISSUER },
            "token_id": "jti",
            "required_claims": ["iss", "exp", "aud", "sub", "jti"]
        }
    });
    for (name, text) in [
        ("metadata.json", metadata.to_string()),
        ("schema.cedarschema", SCHEMA.to_owned()),
        ("policies/refund.cedar", POLICY.to_owned()),
        ("trusted-issuers.json", issuers.to_string()),
    ] {
        std::fs::write(dir.join(name), text).expect("store file");
    }
}

/// Serves `body` to every request on a loopback port until `stop` is called.
struct Loopback {
    url: String,
    port: u16,
    thread: Option<std::thread::JoinHandle<()>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Loopback {
    fn start(body: String) -> Self {
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").expect("loopback port");
        let port = listener.local_addr().expect("port").port();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut c) = conn else { continue };
                let mut buf = [0u8; 4096];
                let _ = c.read(&mut buf);
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = c.write_all(answer.as_bytes());
            }
        });
        Loopback {
            url: format!("http://127.0.0.1:{port}/jwks"),
            port,
            thread: Some(thread),
            stop,
        }
    }

    fn stop(mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn bootstrap(store: PathBuf, jwks: &serde_json::Value) -> BootstrapConfig {
    BootstrapConfig {
        application_name: "greenlight-peer-bench".to_owned(),
        log_config: LogConfig {
            log_type: LogTypeConfig::Off,
            log_level: LogLevel::INFO,
        },
        policy_store_config: PolicyStoreConfig {
            source: PolicyStoreSource::Directory(store),
            ..Default::default()
        },
        jwt_config: JwtConfig {
            jwks: Some(json!({ ISSUER: jwks["keys"] }).to_string()),
            jwt_sig_validation: true,
            jwt_status_validation: false,
            signature_algorithms_supported: HashSet::from([
                Algorithm::RS256,
                Algorithm::ES256,
                Algorithm::EdDSA,
            ]),
            ..Default::default()
        },
        authorization_config: AuthorizationConfig::default(),
        lock_config: None,
        max_base64_size: None,
        max_default_entities: None,
        data_store_config: DataStoreConfig::default(),
        http_client_config: HttpClientConfig {
            max_retries: 0,
            retry_delay: Duration::from_millis(10),
            request_timeout: Duration::from_secs(2),
            max_response_size_bytes: Some(1 << 20),
        },
        trace_config: None,
    }
}

/// A Cedarling trusting `ISSUER` with the keys of `jwks` (a `{"keys": [...]}`
/// set), its token cache at its defaults.
pub async fn engine(jwks: &serde_json::Value, scratch: &Path) -> Cedarling {
    let server = Loopback::start(jwks.to_string());
    let store = scratch.join(format!("cedarling-store-{}", server.port));
    write_store(&store, &server.url);
    let cedarling = Cedarling::new(&bootstrap(store, jwks))
        .await
        .expect("Cedarling starts");
    server.stop();
    cedarling
}

/// The request deciding `token` for a refund of `amount` on ledger `L1`.
pub fn request(token: &str, amount: i64) -> AuthorizeMultiIssuerRequest {
    AuthorizeMultiIssuerRequest::new_with_fields(
        vec![TokenInput::new(TOKEN_TYPE.to_owned(), token.to_owned())],
        EntityData::from_json(
            &json!({ "cedar_entity_mapping": { "entity_type": "Bank::Ledger", "id": "L1" } })
                .to_string(),
        )
        .expect("a resource entity"),
        ACTION.to_owned(),
        Some(json!({ "amount": amount })),
    )
}

/// One decision: `Ok(allowed)`, or `Err` when the token is refused.
pub async fn decide(c: &Cedarling, request: AuthorizeMultiIssuerRequest) -> Result<bool, String> {
    c.authorize_multi_issuer(request)
        .await
        .map(|r| r.decision)
        .map_err(|e| e.to_string())
}
