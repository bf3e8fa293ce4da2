//! Shared test support: a fresh store on each backend, and fixtures.
//!
//! Every scenario runs twice, on SQLite (a file in a temporary directory)
//! and on PostgreSQL (a fresh schema in the database at
//! `GREENLIGHT_TEST_POSTGRES_URL`, default [`DEFAULT_POSTGRES_URL`], dropped
//! afterwards). An unreachable PostgreSQL fails the test; it is never
//! skipped.

// Each test binary uses a different subset of these helpers.
#![allow(
    dead_code,
    reason = "each test binary uses a different subset; an `expect` would fail in those that use them all"
)]

use greenlight_store::{
    Approval, Decision, GrantMode, NewApproval, Obligation, Store, Voter, new_id,
};
use serde_json::json;
use sqlx::{Connection, Executor, PgConnection};

/// Where the tests find PostgreSQL unless told otherwise (trust auth, as CI
/// runs it).
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A fixed "now" for scenarios; any value works, the store reads no clock.
pub const T0: i64 = 1_700_000_000;

/// How long fixture approvals stay pending, in seconds.
pub const TTL: i64 = 300;

/// A store on a fresh, empty database, and what is needed to reopen it.
pub struct TestDb {
    /// The store under test.
    pub store: Store,
    /// The URL it was opened with.
    pub url: String,
    /// Keeps the SQLite file's directory alive.
    _dir: Option<tempfile::TempDir>,
    /// The PostgreSQL server and schema to drop afterwards.
    postgres: Option<(String, String)>,
}

/// Generates, for each scenario `name(db: &mut TestDb)`, the tests
/// `sqlite::name` and `postgres::name`.
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let mut db = crate::common::TestDb::sqlite().await;
                    super::$name(&mut db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let mut db = crate::common::TestDb::postgres().await;
                    super::$name(&mut db).await;
                }
            )*
        }
    };
}

impl TestDb {
    /// A store on a new SQLite file in a temporary directory.
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("a temporary directory for the SQLite file");
        let url = format!("sqlite://{}", dir.path().join("greenlight.db").display());
        let store = Store::connect(&url)
            .await
            .expect("the SQLite store opens and migrates");
        TestDb {
            store,
            url,
            _dir: Some(dir),
            postgres: None,
        }
    }

    /// A store on a new schema of the test PostgreSQL database.
    pub async fn postgres() -> TestDb {
        let server = std::env::var("GREENLIGHT_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
        let schema = format!(
            "gl_test_{}",
            new_id().expect("randomness for the schema name")
        );
        let mut admin = PgConnection::connect(&server).await.unwrap_or_else(|err| {
            panic!(
                "PostgreSQL at {server} is unreachable ({err}); start it, or point \
                 GREENLIGHT_TEST_POSTGRES_URL at one (these tests never skip)"
            )
        });
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .await
            .expect("the test schema is created");
        admin.close().await.expect("the admin connection closes");
        let separator = if server.contains('?') { '&' } else { '?' };
        let url = format!("{server}{separator}options[search_path]={schema}");
        let store = Store::connect(&url)
            .await
            .expect("the PostgreSQL store connects and migrates");
        TestDb {
            store,
            url,
            _dir: None,
            postgres: Some((server, schema)),
        }
    }

    /// Closes the store and opens the same database again, as a restarted
    /// server would.
    pub async fn reopen(&mut self) {
        self.store.close().await;
        self.store = Store::connect(&self.url).await.expect("the store reopens");
    }

    /// Runs one raw statement on the database, outside the store; the
    /// database's own error message if it refuses.
    pub async fn raw_execute(&self, sql: &'static str) -> Result<u64, String> {
        let result = if self.postgres.is_some() {
            let mut conn = PgConnection::connect(&self.url)
                .await
                .expect("a raw PostgreSQL connection");
            conn.execute(sql).await.map(|done| done.rows_affected())
        } else {
            let mut conn = sqlx::SqliteConnection::connect(&self.url)
                .await
                .expect("a raw SQLite connection");
            conn.execute(sql).await.map(|done| done.rows_affected())
        };
        result.map_err(|err| err.to_string())
    }
}

impl Drop for TestDb {
    /// Drops the PostgreSQL schema, even when the test failed. Runs on its
    /// own thread and runtime because `drop` cannot await.
    fn drop(&mut self) {
        let Some((server, schema)) = self.postgres.take() else {
            return;
        };
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for cleanup");
            runtime.block_on(async move {
                let Ok(mut admin) = PgConnection::connect(&server).await else {
                    return;
                };
                // A failed test may leave a transaction holding locks: give
                // up (leaving the schema) rather than hang.
                let _ = admin.execute("SET lock_timeout = '5s'").await;
                let _ = admin
                    .execute(sqlx::AssertSqlSafe(format!(
                        "DROP SCHEMA IF EXISTS {schema} CASCADE"
                    )))
                    .await;
                let _ = admin.close().await;
            });
        });
        let _ = cleanup.join();
    }
}

/// The obligation of the fixture approvals.
pub fn obligation(quorum: u32, grant: GrantMode) -> Obligation {
    Obligation {
        approvers: vec![greenlight_store::Approver::Group("finance".to_owned())],
        quorum,
        ttl_seconds: TTL as u64,
        grant,
        window_seconds: if grant == GrantMode::Window { 600 } else { 0 },
        reason_required: false,
        message: "Refunds over 1000 EUR need finance".to_owned(),
    }
}

/// The issuer of every fixture identity.
pub const ISSUER: &str = "https://idp.example.com";

/// The client fixture approvals are asked through.
pub const REQUESTING_CLIENT: &str = "billing-app";

/// `subject` at [`ISSUER`], voting through the approvals app.
pub fn who(subject: &str) -> Voter {
    Voter {
        issuer: ISSUER.to_owned(),
        subject: subject.to_owned(),
        client_id: "approvals-app".to_owned(),
    }
}

/// `subject` at [`ISSUER`] through the client fixture approvals are asked
/// through: the holder of their window grants.
pub fn holder(subject: &str) -> Voter {
    Voter {
        client_id: REQUESTING_CLIENT.to_owned(),
        ..who(subject)
    }
}

/// A request for approval of refund `digest` by `requester`, asked at `T0`
/// and pending until `T0 + TTL`.
pub fn new_approval(requester: &str, digest: &str, quorum: u32, grant: GrantMode) -> NewApproval {
    NewApproval {
        id: None,
        requester: requester.to_owned(),
        requester_issuer: ISSUER.to_owned(),
        client_id: REQUESTING_CLIENT.to_owned(),
        action_digest: digest.to_owned(),
        action: "refund".to_owned(),
        authorization_details: json!([{
            "type": "greenlight_action",
            "actions": ["refund"],
            "locations": ["https://api.example.com/payments/pay_123"],
            "amount": 2500,
        }]),
        obligation: obligation(quorum, grant),
        binding_message: Some("REFUND-2500".to_owned()),
        reason: Some("customer complaint".to_owned()),
        policy_hash: "sha256:policy".to_owned(),
        expires_at: T0 + TTL,
        poll_interval_seconds: 5,
        requester_tenant: None,
        requester_actor: None,
    }
}

/// The event names of an audit trail, in order.
pub fn event_names(events: &[greenlight_store::AuditEvent]) -> Vec<&str> {
    events.iter().map(|event| event.event.as_str()).collect()
}

/// An approved approval for `alice` on `digest` with quorum 1 and the given
/// grant mode: asked at `T0`, approved by `carol` at `T0 + 1`.
pub async fn approved(db: &TestDb, digest: &str, grant: GrantMode) -> Approval {
    let (approval, _) = db
        .store
        .create_or_get_pending(new_approval("alice", digest, 1, grant), T0)
        .await
        .expect("ask");
    db.store
        .vote(&approval.id, &who("carol"), Decision::Approve, None, T0 + 1)
        .await
        .expect("carol approves")
        .approval
}
