//! `calendar.sync_connection`: changes made in Google come back. One incremental
//! `events.list` per calendar connection with its `syncToken` (pages of up to 2,500; the
//! last page carries the next token); a 410 (the token expired) is answered with a full
//! resync. The apply step (`crm._apply_calendar_changes`, sql/calendar.sql) moves our jobs'
//! schedules to where their events now are (the later change wins), flags a job whose event
//! was deleted in Google, and keeps everyone else's events as the technician's busy intervals
//! (`crm.calendar_busy`: times only). Changes that came from Google do not echo back.
//!
//! Queued by `crm.sync_calendar()` and by the workers every `crm.calendar_sync_interval`.

use super::settings::{CALENDAR_RATE_LIMIT, GOOGLE_CALENDAR_BASE_URL};
use crate::guc;
use crate::runtime::http;
use crate::runtime::limiter::{self, Lane};
use crate::runtime::oauth::{Connection, Mailboxes, NoToken};
use crate::runtime::tasks::{Ran, Step, Task, TaskKind};
use crm_core::integrations::google::calendar::{self as wire, ListedEvent};
use crm_core::runtime::outcome::Answer;
use crm_core::template::budget::Checkpoint;
use serde::Deserialize;
use serde_json::{json, Value};

/// Most events one run reads (a bounded result for the record step); a larger calendar is
/// read on across runs from the page it stopped at.
const MAX_EVENTS_PER_RUN: usize = 50_000;

pub struct SyncConnection;

#[derive(Debug, Deserialize)]
struct Context {
    connection: Option<Connection>,
    calendar_id: Option<String>,
    sync_token: Option<String>,
    page_token: Option<String>,
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl TaskKind for SyncConnection {
    fn name(&self) -> &'static str {
        "calendar.sync_connection"
    }
    fn description(&self) -> &'static str {
        "read a Google calendar's changes (incremental, syncToken) into jobs and busy intervals (payload {\"connection_id\": uuid})"
    }
    fn check(&self, payload: &Value) -> Result<(), String> {
        let id = payload
            .get("connection_id")
            .and_then(Value::as_str)
            .ok_or("the payload needs connection_id")?;
        crm_core::email::message::is_uuid(id)
            .then_some(())
            .ok_or_else(|| "connection_id must be a uuid".into())
    }
    fn context_sql(&self) -> Option<&'static str> {
        Some(
            "SELECT json_build_object(
                 'connection', (SELECT json_build_object('id', p.id, 'provider', p.provider, 'table', 'calendar_providers',
                                    'scopes', p.scopes, 'access_token', p.access_token_encrypted,
                                    'refresh_token', p.refresh_token_encrypted, 'expires_at', extract(epoch FROM p.token_expires_at))
                                WHERE p.is_active AND NOT p.needs_reconnect AND p.access_token_encrypted IS NOT NULL),
                 'calendar_id', p.calendar_id, 'sync_token', s.sync_token, 'page_token', s.page_token)
             FROM crm.calendar_providers p LEFT JOIN crm.calendar_sync s ON s.connection_id = p.id
             WHERE p.id = ($2 ->> 'connection_id')::uuid AND p.account_id = $1::uuid AND p.provider = 'google'",
        )
    }
    fn apply_sql(&self) -> Option<&'static str> {
        Some("SELECT crm._apply_calendar_changes($1::uuid, $2, $3)")
    }
    fn run(&self, task: &Task, checkpoint: Checkpoint) -> Ran {
        let ctx: Context = match serde_json::from_value(task.context.clone()) {
            Ok(c) => c,
            Err(e) => {
                return Step::Failed(format!("the calendar's context cannot be read: {e}")).into()
            }
        };
        let (Some(connection), Some(calendar_id)) =
            (ctx.connection.as_ref(), ctx.calendar_id.as_deref())
        else {
            return Step::Failed(
                "the calendar connection does not exist, is inactive or needs reconnecting".into(),
            )
            .into();
        };
        let mut mailboxes = Mailboxes::default();
        let lane = Lane {
            provider: "google_calendar",
            key: Some(connection.id.clone()),
        };
        // A run that stopped mid-listing resumes at its page (with the token it started from).
        let mut sync_token = ctx.sync_token.clone();
        let mut full = sync_token.is_none();
        let mut page = ctx.page_token.clone();
        let mut events: Vec<Value> = Vec::new();
        let mut refreshed = false;
        let finish = |events: Vec<Value>,
                      full: bool,
                      next: Option<String>,
                      page: Option<String>,
                      step: Step,
                      m: Mailboxes| {
            let updates = m.updates();
            Ran {
                step,
                apply: Some(
                    json!({"events": events, "full": full, "sync_token": next, "page_token": page,
                                   "connections": updates}),
                ),
            }
        };
        loop {
            if checkpoint() {
                let stop = Answer {
                    error: Some("the runner stopped mid-listing".into()),
                    ..Answer::default()
                };
                return finish(
                    events,
                    full,
                    sync_token,
                    page,
                    Step::Answered(stop, "calendar list: "),
                    mailboxes,
                );
            }
            let token = match mailboxes.token(connection, refreshed) {
                Ok(t) => t,
                Err(NoToken::Revoked(r) | NoToken::Unusable(r)) => {
                    return finish(Vec::new(), false, None, None, Step::Failed(r), mailboxes)
                }
                Err(NoToken::Failed(a, what)) => {
                    return finish(
                        Vec::new(),
                        false,
                        None,
                        None,
                        Step::Answered(a, what),
                        mailboxes,
                    )
                }
            };
            let mut url = http::url(
                &guc::text(&GOOGLE_CALENDAR_BASE_URL),
                &format!(
                    "/calendar/v3/calendars/{}/events?maxResults=2500",
                    urlencode(calendar_id)
                ),
            );
            match &sync_token {
                Some(t) => url.push_str(&format!("&syncToken={}", urlencode(t))),
                None => url.push_str("&singleEvents=true"),
            }
            if let Some(p) = &page {
                url.push_str(&format!("&pageToken={}", urlencode(p)));
            }
            if !limiter::pace(&lane, CALENDAR_RATE_LIMIT.get(), checkpoint) {
                continue; // the checkpoint above ends it
            }
            let answer = wire::normalised(http::bearer("GET", &url, &token, None));
            if answer.status == Some(401) && !refreshed {
                refreshed = true;
                continue;
            }
            if answer.status == Some(429) {
                limiter::slow_down(&lane, answer.retry_after.as_deref());
            }
            if answer.status == Some(410) && sync_token.is_some() {
                // The token expired (Google keeps them about a week): list everything again.
                sync_token = None;
                full = true;
                page = None;
                events.clear();
                continue;
            }
            if !matches!(answer.status, Some(200..=299)) {
                return finish(
                    Vec::new(),
                    false,
                    None,
                    None,
                    Step::Answered(answer, "calendar list: "),
                    mailboxes,
                );
            }
            let Some(listed) = wire::parse_list(&answer.body) else {
                let bad = Answer {
                    status: Some(502),
                    body: "an events.list answer that does not parse".into(),
                    ..answer
                };
                return finish(
                    Vec::new(),
                    false,
                    None,
                    None,
                    Step::Answered(bad, "calendar list: "),
                    mailboxes,
                );
            };
            events.extend(listed.events.iter().map(ListedEvent::to_json));
            match (listed.next_page_token, listed.next_sync_token) {
                (Some(next), _) if events.len() < MAX_EVENTS_PER_RUN => page = Some(next),
                (Some(next), _) => {
                    // Bounded: apply what was read, and go on from this page next run.
                    let n = events.len();
                    return finish(
                        events,
                        full,
                        sync_token,
                        Some(next),
                        Step::Done(json!({"events": n, "more": true})),
                        mailboxes,
                    );
                }
                (None, next_sync) => {
                    let n = events.len();
                    return finish(
                        events,
                        full,
                        next_sync,
                        None,
                        Step::Done(json!({"events": n, "full": full})),
                        mailboxes,
                    );
                }
            }
        }
    }
}
