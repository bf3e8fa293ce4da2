//! Who each MCP session belongs to, and what its client said it can do.

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use greenlight_types::Principal;
use serde_json::Value;

use super::{bad_request, rpc_error};

/// Sessions remembered with their owner; the oldest is forgotten beyond.
const MAX_SESSIONS: usize = 100_000;

/// The sessions the upstream opened, each with the person and client it
/// was opened for: a session id is not a credential, so another caller
/// presenting it is told the session does not exist (MCP: sessions are
/// bound to their user). Kept in memory: with replicas, a session stays
/// on the replica that saw it begin.
#[derive(Debug, Default)]
pub struct Sessions {
    owners: std::sync::Mutex<(
        std::collections::HashMap<String, Session>,
        std::collections::VecDeque<String>,
    )>,
}

/// One session the upstream opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// Its id.
    pub id: String,
    /// Whose it is: issuer, subject and client.
    owner: String,
    /// Whether the client declared URL-mode elicitation at `initialize`.
    pub url_elicitation: bool,
}

impl Sessions {
    /// The session a request names, if it is `who`'s; a `404` otherwise
    /// (unknown or another's alike), and a `400` for a repeated header.
    pub(super) fn check(
        &self,
        headers: &HeaderMap,
        who: &Principal,
    ) -> Result<Option<Session>, Box<Response>> {
        let mut ids = headers.get_all("mcp-session-id").iter();
        let Some(id) = ids.next() else {
            return Ok(None);
        };
        if ids.next().is_some() {
            return Err(Box::new(bad_request(
                &Value::Null,
                -32600,
                "one Mcp-Session-Id, not several",
            )));
        }
        let id = id.to_str().unwrap_or_default().to_owned();
        let owners = self
            .owners
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match owners.0.get(&id) {
            Some(s) if s.owner == super::super::auth::identity_key(who) => Ok(Some(s.clone())),
            _ => {
                let mut resp = rpc_error(&Value::Null, -32001, "Session not found", None);
                *resp.status_mut() = StatusCode::NOT_FOUND;
                Err(Box::new(resp))
            }
        }
    }

    /// Remembers that session `id` is `who`'s, and whether its client
    /// takes URL elicitation.
    pub(super) fn start(&self, id: &str, who: &Principal, url_elicitation: bool) {
        let mut owners = self
            .owners
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if owners.0.contains_key(id) {
            return;
        }
        owners.0.insert(
            id.to_owned(),
            Session {
                id: id.to_owned(),
                owner: super::super::auth::identity_key(who),
                url_elicitation,
            },
        );
        owners.1.push_back(id.to_owned());
        while owners.1.len() > MAX_SESSIONS {
            if let Some(old) = owners.1.pop_front() {
                owners.0.remove(&old);
            }
        }
    }

    /// Forgets a session that ended.
    pub(super) fn end(&self, id: &str) {
        let mut owners = self
            .owners
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        owners.0.remove(id);
        owners.1.retain(|s| s != id);
    }
}
