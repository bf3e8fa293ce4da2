//! What starts a swap besides the admin API: `SIGHUP`, a change in the
//! bundle folder or the component file, noticed by reading them every
//! `[reload] interval` seconds, and a new archive at a bundle URL, polled
//! every `[remote_bundle] poll_interval` seconds.
//!
//! ```toml
//! [reload]
//! interval = 2      # seconds between looks at the folder; 0 turns watching off
//! ```
//!
//! A change is acted on once it has held still for one interval, so a
//! bundle being copied file by file is not loaded half-written (a
//! half-written bundle that loads and passes its tests would otherwise
//! decide until the next look). To change several files at once, swap a
//! symbolic link to a new folder.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::{reload, reload_expecting};
use crate::serve::AppState;

/// Seconds between looks at the bundle folder when `[reload] interval` is
/// not set.
pub const DEFAULT_INTERVAL_SECONDS: u64 = 2;

/// `[reload]`: watching the bundle folder.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReloadSettings {
    /// Seconds between looks at the bundle folder and component file;
    /// `0` turns watching off (`SIGHUP` and the admin API still swap).
    pub interval: Option<u64>,
}

impl ReloadSettings {
    /// The interval, or `None` when watching is off.
    pub fn interval(&self) -> Option<Duration> {
        match self.interval.unwrap_or(DEFAULT_INTERVAL_SECONDS) {
            0 => None,
            n => Some(Duration::from_secs(n)),
        }
    }
}

/// Listens for `SIGHUP` from now on (so a signal sent once the server
/// answers is never the default one, which ends the process), and swaps
/// on each until the task is stopped.
pub fn on_hangup(st: Arc<AppState>) -> Option<tokio::task::JoinHandle<()>> {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP: reload with the admin API or the folder watcher");
        return None;
    };
    Some(tokio::spawn(async move {
        while hup.recv().await.is_some() {
            reload(&st, "sighup").await;
        }
    }))
}

/// Looks at the bundle folder and component every interval and swaps when
/// what they hold has changed and held still since the last look. A bundle
/// URL is polled instead ([`poll`]).
pub async fn watch(st: Arc<AppState>, every: Duration) {
    let mut seen: Option<[u8; 32]> = None;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // A folder mid-rename or a missing file: look again later.
        let Some(now) = st.live.sources().fingerprint().await else {
            seen = None;
            continue;
        };
        if now != st.live.current().fingerprint && seen == Some(now) {
            reload_expecting(&st, "watch", Some(now)).await;
        }
        seen = Some(now);
    }
}

/// Polls a bundle URL every interval (`If-None-Match`: an unchanged
/// archive costs one request) and swaps when it holds a new version.
pub async fn poll(st: Arc<AppState>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is now: the start has just fetched.
    tick.tick().await;
    loop {
        tick.tick().await;
        reload(&st, "poll").await;
    }
}
