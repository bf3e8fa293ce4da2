//! The portal's pages, rendered from templates (askama, under
//! `templates/portal/`) that escape every value they show.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// What every page's frame shows: who is signed in, and the token their
/// sign-out form carries.
#[derive(Debug, Default)]
pub(super) struct Chrome {
    /// The signed-in person's subject, if anyone is signed in.
    pub user: Option<String>,
    /// The session's CSRF token.
    pub csrf: String,
}

/// A page with one message and, perhaps, a link onwards.
#[derive(Debug)]
pub(super) struct Message {
    pub title: String,
    pub message: String,
    /// `(href, text)`.
    pub link: Option<(String, String)>,
}

#[derive(Template)]
#[template(path = "portal/message.html")]
struct MessagePage<'a> {
    chrome: Chrome,
    m: &'a Message,
}

/// One approval in the list.
#[derive(Debug)]
pub(super) struct Row {
    pub id: String,
    pub action: String,
    pub message: String,
    pub resource: String,
    pub requester: String,
    /// The agent acting for the requester, if one is.
    pub actor: String,
    pub client: String,
    /// E.g. "1 of 2".
    pub needed: String,
    pub expires: String,
    /// Whether the signed-in person is confirming their own action.
    pub own: bool,
}

/// `GET /portal`.
#[derive(Template)]
#[template(path = "portal/list.html")]
pub(super) struct ListPage {
    pub chrome: Chrome,
    pub rows: Vec<Row>,
    /// Whether more are waiting than the page shows.
    pub more: bool,
}

/// One vote as the detail page shows it.
#[derive(Debug)]
pub(super) struct VoteRow {
    pub who: String,
    pub issuer: String,
    pub client: String,
    pub decision: String,
    pub reason: String,
    pub at: String,
}

/// `GET /portal/approvals/{id}`.
#[derive(Template)]
#[template(path = "portal/detail.html")]
pub(super) struct DetailPage {
    pub chrome: Chrome,
    pub id: String,
    pub action: String,
    pub message: String,
    pub resource_type: String,
    pub resource_id: String,
    pub locations: Vec<String>,
    /// Every bound parameter, its value as canonical JSON.
    pub params: Vec<(String, String)>,
    pub requester: String,
    /// The agent acting for the requester (RFC 8693 `act`), if one is.
    pub actor: String,
    pub requester_issuer: String,
    pub client: String,
    pub tenant: String,
    pub binding_message: String,
    pub reason: String,
    pub status: String,
    pub created: String,
    pub expires: String,
    pub grant: String,
    pub votes: Vec<VoteRow>,
    /// Distinct approvals still needed.
    pub needed: u32,
    pub quorum: u32,
    pub digest: String,
    /// Whether the form is shown: pending, and the person may vote.
    pub can_vote: bool,
    pub reason_required: bool,
    /// The requester confirming their own action.
    pub own: bool,
    /// Why the person cannot vote now, when they might after doing
    /// something (signing in anew).
    pub notice: String,
    /// Where to sign in anew when that is what `notice` asks.
    pub fresh_link: String,
    /// The action token handed out and its use, once decided.
    pub token: String,
}

/// One decided approval in the history.
#[derive(Debug)]
pub(super) struct HistoryRow {
    pub id: String,
    pub status: String,
    pub action: String,
    pub requester: String,
    /// Who voted how, e.g. "ann approve, bob approve".
    pub votes: String,
    pub decided: String,
    /// The action token's id, if one was handed out.
    pub token: String,
}

/// `GET /portal/history`.
#[derive(Template)]
#[template(path = "portal/history.html")]
pub(super) struct HistoryPage {
    pub chrome: Chrome,
    /// Whether the person reads as an auditor (everything).
    pub auditor: bool,
    pub rows: Vec<HistoryRow>,
    /// The `after` of the next page, empty at the end.
    pub next: String,
}

/// `GET /portal/confirm`.
#[derive(Template)]
#[template(path = "portal/confirm.html")]
pub(super) struct ConfirmPage {
    pub chrome: Chrome,
    pub code: String,
    pub error: String,
}

/// Renders a page with `status`, as `text/html`.
pub(super) fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            )],
            html,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a portal page failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page failed to render",
            )
                .into_response()
        }
    }
}

/// A message page.
pub(super) fn page(status: StatusCode, m: &Message) -> Response {
    render(
        status,
        &MessagePage {
            chrome: Chrome::default(),
            m,
        },
    )
}

/// A time in Unix seconds as people read it, in UTC.
pub(super) fn when(t: i64) -> String {
    let secs = u64::try_from(t).unwrap_or(0);
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}
