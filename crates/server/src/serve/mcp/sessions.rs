//! Who each MCP session belongs to, and what its client said it can do.

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use greenlight_types::Principal;
use serde_json::Value;

use super::{bad_request, rpc_error};

/// Sessions remembered in all; beyond, the oldest is forgotten.
const MAX_SESSIONS: usize = 100_000;

/// Sessions remembered per owner (person and client); beyond, that
/// owner's oldest is forgotten, so one caller opening sessions in a loop
/// pushes out only their own.
const MAX_PER_OWNER: usize = 1_000;

/// The sessions the upstream opened, each with the person and client it
/// was opened for: a session id is not a credential, so another caller
/// presenting it is told the session does not exist (MCP: sessions are
/// bound to their user). Kept in memory: with replicas, a session stays
/// on the replica that saw it begin.
#[derive(Debug, Default)]
pub struct Sessions {
    inner: std::sync::Mutex<Inner>,
}

/// The sessions, oldest first overall and per owner.
#[derive(Debug, Default)]
struct Inner {
    sessions: std::collections::HashMap<String, Session>,
    /// Ids in the order they began, with the number each began as; may
    /// hold sessions already forgotten (or an id forgotten and begun
    /// again), which are skipped, and compacted away when they pile up.
    order: std::collections::VecDeque<(String, u64)>,
    /// The number the next session begins as.
    next: u64,
    /// Each owner's ids, oldest first.
    by_owner: std::collections::HashMap<String, std::collections::VecDeque<String>>,
}

impl Inner {
    /// Forgets session `id`, wherever it is listed but in `order`.
    fn forget(&mut self, id: &str) {
        if let Some(s) = self.sessions.remove(id)
            && let Some(ids) = self.by_owner.get_mut(&s.owner)
        {
            ids.retain(|i| i != id);
            if ids.is_empty() {
                self.by_owner.remove(&s.owner);
            }
        }
    }
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
    /// The number it began as (which entry of the order is its own).
    seq: u64,
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
        let inner = self.lock();
        match inner.sessions.get(&id) {
            Some(s) if s.owner == super::super::auth::identity_key(who) => Ok(Some(s.clone())),
            _ => {
                let mut resp = rpc_error(&Value::Null, -32001, "Session not found", None);
                *resp.status_mut() = StatusCode::NOT_FOUND;
                Err(Box::new(resp))
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Remembers that session `id` is `who`'s, and whether its client
    /// takes URL elicitation.
    pub(super) fn start(&self, id: &str, who: &Principal, url_elicitation: bool) {
        let mut inner = self.lock();
        if inner.sessions.contains_key(id) {
            return;
        }
        let owner = super::super::auth::identity_key(who);
        let seq = inner.next;
        inner.next += 1;
        inner.sessions.insert(
            id.to_owned(),
            Session {
                id: id.to_owned(),
                owner: owner.clone(),
                url_elicitation,
                seq,
            },
        );
        inner.order.push_back((id.to_owned(), seq));
        let mine = inner.by_owner.entry(owner.clone()).or_default();
        mine.push_back(id.to_owned());
        let oldest = (mine.len() > MAX_PER_OWNER)
            .then(|| mine.front().cloned())
            .flatten();
        if let Some(old) = oldest {
            inner.forget(&old);
        }
        while inner.sessions.len() > MAX_SESSIONS {
            match inner.order.pop_front() {
                Some((old, seq)) if inner.sessions.get(&old).is_some_and(|s| s.seq == seq) => {
                    inner.forget(&old);
                }
                Some(_) => {}
                None => break,
            }
        }
        if inner.order.len() > 2 * MAX_SESSIONS {
            let Inner {
                sessions, order, ..
            } = &mut *inner;
            order.retain(|(i, seq)| sessions.get(i).is_some_and(|s| s.seq == *seq));
        }
    }

    /// Forgets a session that ended.
    pub(super) fn end(&self, id: &str) {
        // Its entry in the order is skipped when reached.
        self.lock().forget(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(subject: &str) -> Principal {
        Principal {
            entity_type: "User".to_owned(),
            subject: subject.to_owned(),
            client_id: "agent".to_owned(),
            issuer: "https://idp.example.com".to_owned(),
            ..Principal::default()
        }
    }

    fn has(s: &Sessions, id: &str) -> bool {
        s.lock().sessions.contains_key(id)
    }

    /// One caller opening sessions in a loop forgets only their own
    /// oldest; another's session stays.
    #[test]
    fn one_owner_cannot_push_out_anothers_sessions() {
        let s = Sessions::default();
        s.start("alice-1", &who("alice"), true);
        for i in 0..=MAX_PER_OWNER {
            s.start(&format!("mallory-{i}"), &who("mallory"), false);
        }
        assert!(has(&s, "alice-1"));
        assert!(!has(&s, "mallory-0"), "mallory's oldest is forgotten");
        assert!(has(&s, "mallory-1") && has(&s, &format!("mallory-{MAX_PER_OWNER}")));
        let inner = s.lock();
        assert_eq!(inner.sessions.len(), MAX_PER_OWNER + 1);
        assert_eq!(inner.by_owner.len(), 2);
        drop(inner);
        s.end("alice-1");
        assert!(!has(&s, "alice-1"));
        assert_eq!(s.lock().by_owner.len(), 1);
    }
}
