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

use super::calendar::urlencode;

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

/// `calendar.watch`: open (or renew) a push channel on a calendar connection's events
/// (`events/watch`, type `web_hook`, address `crm.calendar_webhook_url`, a random per-channel
/// token of which only the hash is stored). The previous channel, if any, is stopped first.
/// Queued by `crm.calendar_watch()` and by the workers a day before a channel expires.
pub struct Watch;

#[derive(Debug, Deserialize)]
struct WatchContext {
    connection: Option<Connection>,
    calendar_id: Option<String>,
    webhook_url: Option<String>,
    channel_id: Option<String>,
    resource_id: Option<String>,
}

/// 16 random bytes as a UUID's text (the channel id Google echoes in X-Goog-Channel-ID).
fn random_uuid() -> String {
    use rand_core::{OsRng, RngCore};
    let mut b = [0u8; 16];
    OsRng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Stop a channel (best effort: a channel Google no longer knows is stopped already).
pub(crate) fn stop_channel(token: &str, channel_id: &str, resource_id: &str) -> Answer {
    http::bearer(
        "POST",
        &http::url(
            &guc::text(&GOOGLE_CALENDAR_BASE_URL),
            "/calendar/v3/channels/stop",
        ),
        token,
        Some(&json!({"id": channel_id, "resourceId": resource_id})),
    )
}

impl TaskKind for Watch {
    fn name(&self) -> &'static str {
        "calendar.watch"
    }
    fn description(&self) -> &'static str {
        "open or renew a push channel on a Google calendar (payload {\"connection_id\": uuid}); notifications arrive at crm.google_calendar_webhook()"
    }
    fn check(&self, payload: &Value) -> Result<(), String> {
        SyncConnection.check(payload)
    }
    fn context_sql(&self) -> Option<&'static str> {
        Some(
            "SELECT json_build_object(
                 'connection', (SELECT json_build_object('id', p.id, 'provider', p.provider, 'table', 'calendar_providers',
                                    'scopes', p.scopes, 'access_token', p.access_token_encrypted,
                                    'refresh_token', p.refresh_token_encrypted, 'expires_at', extract(epoch FROM p.token_expires_at))
                                WHERE p.is_active AND NOT p.needs_reconnect AND p.access_token_encrypted IS NOT NULL),
                 'calendar_id', p.calendar_id, 'webhook_url', nullif(current_setting('crm.calendar_webhook_url', true), ''),
                 'channel_id', s.channel_id, 'resource_id', s.channel_resource_id)
             FROM crm.calendar_providers p LEFT JOIN crm.calendar_sync s ON s.connection_id = p.id
             WHERE p.id = ($2 ->> 'connection_id')::uuid AND p.account_id = $1::uuid AND p.provider = 'google'",
        )
    }
    fn apply_sql(&self) -> Option<&'static str> {
        Some("SELECT crm._apply_calendar_watch($1::uuid, $2, $3)")
    }
    fn run(&self, task: &Task, checkpoint: Checkpoint) -> Ran {
        let ctx: WatchContext = match serde_json::from_value(task.context.clone()) {
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
        let Some(address) = ctx.webhook_url.as_deref() else {
            return Step::Failed("crm.calendar_webhook_url is not set".into()).into();
        };
        let mut mailboxes = Mailboxes::default();
        let token = match mailboxes.token(connection, false) {
            Ok(t) => t,
            Err(NoToken::Revoked(r) | NoToken::Unusable(r)) => return Step::Failed(r).into(),
            Err(NoToken::Failed(a, what)) => return Step::Answered(a, what).into(),
        };
        let lane = Lane {
            provider: "google_calendar",
            key: Some(connection.id.clone()),
        };
        if let (Some(old), Some(resource)) = (&ctx.channel_id, &ctx.resource_id) {
            if limiter::pace(&lane, CALENDAR_RATE_LIMIT.get(), checkpoint) {
                let _ = stop_channel(&token, old, resource);
            }
        }
        if !limiter::pace(&lane, CALENDAR_RATE_LIMIT.get(), checkpoint) {
            let stop = Answer {
                error: Some("the runner stopped".into()),
                ..Answer::default()
            };
            return Step::Answered(stop, "calendar watch: ").into();
        }
        let channel_id = random_uuid();
        let (channel_token, token_hash) = {
            use rand_core::{OsRng, RngCore};
            let mut b = [0u8; 32];
            OsRng.fill_bytes(&mut b);
            crm_core::runtime::connect::state(&b)
        };
        let url = http::url(
            &guc::text(&GOOGLE_CALENDAR_BASE_URL),
            &format!(
                "/calendar/v3/calendars/{}/events/watch",
                urlencode(calendar_id)
            ),
        );
        let body = json!({"id": channel_id, "type": "web_hook", "address": address, "token": channel_token,
                          "params": {"ttl": "604800"}});
        let answer = wire::normalised(http::bearer("POST", &url, &token, Some(&body)));
        let updates = mailboxes.updates();
        if !matches!(answer.status, Some(200..=299)) {
            return Ran {
                step: Step::Answered(answer, "calendar watch: "),
                apply: Some(json!({"connections": updates})),
            };
        }
        let parsed: Value = serde_json::from_str(&answer.body).unwrap_or_default();
        let expires_ms = parsed.get("expiration").and_then(|e| {
            e.as_str()
                .and_then(|s| s.parse::<i64>().ok())
                .or_else(|| e.as_i64())
        });
        Ran {
            step: Step::Done(json!({"channel_id": channel_id, "expires_ms": expires_ms})),
            apply: Some(json!({"channel_id": channel_id, "token_hash": token_hash,
                               "resource_id": parsed.get("resourceId"), "expires_ms": expires_ms,
                               "connections": updates})),
        }
    }
}

/// For crm.disconnect: stop a calendar connection's push channel at Google before its tokens
/// are dropped (best effort; returns what Google said).
#[pgrx::pg_extern(volatile)]
fn _calendar_stop_watch(connection_id: pgrx::Uuid) -> String {
    use pgrx::prelude::*;
    // (the access token, sealed; the channel id; Google's resource id)
    type ChannelRow = (Option<String>, Option<String>, Option<String>);
    let row: Option<ChannelRow> = Spi::connect(|client| {
        let mut rows = client.select(
            "SELECT p.access_token_encrypted, s.channel_id, s.channel_resource_id
             FROM crm.calendar_providers p JOIN crm.calendar_sync s ON s.connection_id = p.id
             WHERE p.id = $1 AND s.channel_id IS NOT NULL",
            None,
            &[connection_id.into()],
        )?;
        Ok::<_, pgrx::spi::Error>(match rows.next() {
            Some(r) => Some((
                r.get::<String>(1)?,
                r.get::<String>(2)?,
                r.get::<String>(3)?,
            )),
            None => None,
        })
    })
    .unwrap_or_else(|e| pgrx::error!("reading the calendar channel failed: {e}"));
    let Some((Some(sealed), Some(channel), Some(resource))) = row else {
        return "no channel".into();
    };
    let Ok(token) = crate::vault::open_token(
        &sealed,
        &format!("calendar_providers:{connection_id}:access_token"),
    ) else {
        return "the stored token does not decrypt; channel left to expire".into();
    };
    let url = http::url(
        &guc::text(&GOOGLE_CALENDAR_BASE_URL),
        "/calendar/v3/channels/stop",
    );
    let body = json!({"id": channel, "resourceId": resource});
    let answer = http::bearer_interruptible("POST", url, token, Some(body));
    match answer.status {
        Some(200..=299) => "stopped".into(),
        _ => format!(
            "not stopped ({}); it expires on its own",
            crm_core::runtime::outcome::describe(&answer)
        ),
    }
}
