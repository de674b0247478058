//! `contacts.sync`: a contacts connection's address book comes into crm.contacts. One run reads
//! each of the connection's listings (feeds) from where the last one stopped — a full listing
//! the first time, then only the changes (Google's sync token, Graph's delta link) — and hands
//! the people to `crm._apply_contact_sync` (sql/contacts_sync.sql), which links each to one
//! CRM contact. An expired token (Google's EXPIRED_SYNC_TOKEN, Graph's 410) is answered with a
//! full listing in the same run; a 401 with one token refresh; a 429 closes the provider's
//! lane for the connection until Retry-After, and the task is retried with what it read so far
//! applied. Runs are bounded (`crm.contacts_sync_max_people`): a longer address book goes on
//! from its page in the next run, queued at once.
//!
//! Each provider is an `AddressBook`, next to its integration
//! (src/integrations/google/people.rs, src/integrations/microsoft/contacts.rs).

use super::{CONTACTS_PAGE_SIZE, CONTACTS_SYNC_MAX_PEOPLE, DEFAULT_PHONE_REGION};
use crate::guc;
use crate::runtime::http;
use crate::runtime::limiter::{self, Lane};
use crate::runtime::oauth::{Connection, Mailboxes, NoToken};
use crate::runtime::tasks::{Ran, Step, Task, TaskKind};
use crm_core::contacts::person::{Page, Person};
use crm_core::runtime::outcome::Answer;
use crm_core::template::budget::Checkpoint;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Where one listing of a connection goes on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    /// The token of the last complete listing (Google's sync token, Graph's delta link):
    /// ask for the changes since. None: a full listing.
    #[serde(default)]
    pub sync: Option<String>,
    /// The page a listing stopped at (Google's page token, Graph's next link).
    #[serde(default)]
    pub page: Option<String>,
    /// When the full listing under way began (Unix seconds): sources not seen since are gone
    /// once it completes.
    #[serde(default)]
    pub full_started_at: Option<f64>,
}

/// One page request.
pub struct Request {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
}

/// An address book provider: how its listings are asked for and read. Pure but for the
/// settings it reads; the runner below does the HTTP, tokens, pacing and bookkeeping.
pub trait AddressBook: Sync {
    /// `contact_providers.provider`.
    fn provider(&self) -> &'static str;
    /// The limiter's provider name and requests per second per connection.
    fn lane(&self) -> (&'static str, f64);
    /// The listings a consent lets the sync read, in order.
    fn feeds(&self, scopes: &[String]) -> Vec<&'static str>;
    /// The request for a listing's next page; Err when a stored link may not be followed
    /// (the run starts that listing over).
    fn request(&self, feed: &str, cursor: &Cursor, page_size: u32) -> Result<Request, String>;
    /// One answer page.
    fn page(&self, feed: &str, body: &str, region: &str) -> Result<Page, String>;
    /// Whether an error answer says the sync token or delta link is no longer valid.
    fn expired(&self, answer: &Answer) -> bool;
}

fn book(provider: &str) -> Option<&'static dyn AddressBook> {
    crate::integrations::ADDRESS_BOOKS
        .iter()
        .copied()
        .find(|b| b.provider() == provider)
}

pub struct SyncContacts;

#[derive(Debug, Deserialize)]
struct Context {
    connection: Option<Connection>,
    provider: String,
    #[serde(default)]
    cursors: BTreeMap<String, Cursor>,
}

/// A listed person and the listing it came from.
#[derive(Serialize)]
struct Listed {
    feed: &'static str,
    #[serde(flatten)]
    person: Person,
}

/// What the run hands to the apply step.
struct Collected {
    people: Vec<Listed>,
    cursors: BTreeMap<String, Cursor>,
    completed_full: Vec<Value>,
    /// Stopped at a page (a bound, or the runner's turn ended): the rest follows at once.
    more: bool,
    /// Every listing read to its end.
    complete: bool,
    /// About how many bytes `people` takes (`Person::approx_bytes`).
    bytes: usize,
}

impl Collected {
    fn into_ran(self, step: Step, mailboxes: Mailboxes, region: &str) -> Ran {
        Ran {
            step,
            apply: Some(json!({
                "people": self.people, "cursors": self.cursors, "completed_full": self.completed_full,
                "more": self.more, "complete": self.complete, "region": region,
                "connections": mailboxes.updates(),
            })),
        }
    }
}

/// Most bytes of people one run hands to the apply step (about; jsonb takes at most 1 GB,
/// and the worker holds it all).
const MAX_RUN_BYTES: usize = 64 << 20;

fn now_secs() -> f64 {
    chrono::Utc::now().timestamp_millis() as f64 / 1000.0
}

impl TaskKind for SyncContacts {
    fn name(&self) -> &'static str {
        "contacts.sync"
    }
    fn description(&self) -> &'static str {
        "read a contacts connection's address book (Google People, Microsoft Graph; incremental) into crm.contacts (payload {\"connection_id\": uuid})"
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
                 'connection', (SELECT json_build_object('id', p.id, 'provider', p.provider, 'table', 'contact_providers',
                                    'scopes', p.scopes, 'access_token', p.access_token_encrypted,
                                    'refresh_token', p.refresh_token_encrypted, 'expires_at', extract(epoch FROM p.token_expires_at))
                                WHERE p.is_active AND NOT p.needs_reconnect AND p.access_token_encrypted IS NOT NULL),
                 'provider', p.provider, 'cursors', coalesce(s.cursors, '{}'))
             FROM crm.contact_providers p LEFT JOIN crm.contact_sync s ON s.connection_id = p.id
             WHERE p.id = ($2 ->> 'connection_id')::uuid AND p.account_id = $1::uuid",
        )
    }
    fn apply_sql(&self) -> Option<&'static str> {
        Some("SELECT crm._apply_contact_sync($1::uuid, $2, $3)")
    }
    fn run(&self, task: &Task, checkpoint: Checkpoint) -> Ran {
        let ctx: Context = match serde_json::from_value(task.context.clone()) {
            Ok(c) => c,
            Err(e) => {
                return Step::Failed(format!(
                    "the contacts connection's context cannot be read: {e}"
                ))
                .into()
            }
        };
        let Some(connection) = ctx.connection.as_ref() else {
            return Step::Failed(
                "the contacts connection does not exist, is inactive or needs reconnecting".into(),
            )
            .into();
        };
        let Some(book) = book(&ctx.provider) else {
            return Step::Failed(format!("no address book for provider {}", ctx.provider)).into();
        };
        let region = guc::text(&DEFAULT_PHONE_REGION);
        let page_size = CONTACTS_PAGE_SIZE.get().clamp(1, 1000) as u32;
        let max_people = CONTACTS_SYNC_MAX_PEOPLE.get().max(1) as usize;
        let (lane_name, rate) = book.lane();
        let lane = Lane {
            provider: lane_name,
            key: Some(connection.id.clone()),
        };
        let mut mailboxes = Mailboxes::default();
        let mut refreshed = false;
        let mut got = Collected {
            people: Vec::new(),
            cursors: ctx.cursors.clone(),
            completed_full: Vec::new(),
            more: false,
            complete: false,
            bytes: 0,
        };
        let full_listing = || Cursor {
            full_started_at: Some(now_secs()),
            ..Cursor::default()
        };
        for feed in book.feeds(&connection.scopes) {
            let mut cursor = got.cursors.get(feed).cloned().unwrap_or_default();
            // A full listing begun in this run may remove whoever it does not list; one resumed
            // from an earlier run may not (pages shift when people change in between).
            let mut started_here = false;
            if cursor.sync.is_none() && cursor.full_started_at.is_none() {
                cursor = full_listing();
                started_here = true;
            }
            // The next request follows a page link stored by an earlier run (it may be stale),
            // or one the provider gave in this run (it must be followable).
            let mut stored_page = cursor.page.is_some();
            loop {
                got.cursors.insert(feed.to_string(), cursor.clone());
                if checkpoint() {
                    // The runner's turn ended (or it is stopping): what was read is applied,
                    // and the rest follows in a run queued at once (not an attempt lost).
                    got.more = true;
                    let n = got.people.len();
                    return got.into_ran(
                        Step::Done(json!({"people": n, "more": true, "stopped": true})),
                        mailboxes,
                        &region,
                    );
                }
                let token = match mailboxes.token(connection, refreshed) {
                    Ok(t) => t,
                    Err(NoToken::Revoked(r) | NoToken::Unusable(r)) => {
                        return got.into_ran(Step::Failed(r), mailboxes, &region)
                    }
                    Err(NoToken::Failed(a, what)) => {
                        return got.into_ran(Step::Answered(a, what), mailboxes, &region)
                    }
                };
                let request = match book.request(feed, &cursor, page_size) {
                    Ok(r) => r,
                    Err(why) if cursor.page.is_some() && !stored_page => {
                        // the provider's own next link: starting over would loop on it
                        return got.into_ran(
                            Step::Failed(format!("{feed}: {why}")),
                            mailboxes,
                            &region,
                        );
                    }
                    Err(why) => {
                        pgrx::log!(
                            "contacts.sync {}: {why}; listing {feed} again in full",
                            connection.id
                        );
                        cursor = full_listing();
                        started_here = true;
                        stored_page = false;
                        continue;
                    }
                };
                if !limiter::pace(&lane, rate, checkpoint) {
                    continue; // the checkpoint above ends it
                }
                let answer =
                    http::bearer_with_headers("GET", &request.url, &token, &request.headers);
                if answer.status == Some(401) && !refreshed {
                    refreshed = true;
                    continue;
                }
                if answer.status == Some(429) {
                    limiter::slow_down(&lane, answer.retry_after.as_deref());
                }
                let stale_page = stored_page && matches!(answer.status, Some(400 | 404 | 410));
                if (cursor.sync.is_some() && book.expired(&answer)) || stale_page {
                    // The token expired, or a page kept from an earlier run is no longer
                    // served: list everything again (sources it no longer lists are removed
                    // when that listing completes).
                    cursor = full_listing();
                    started_here = true;
                    stored_page = false;
                    continue;
                }
                if !matches!(answer.status, Some(200..=299)) {
                    return got.into_ran(
                        Step::Answered(answer, "contacts list: "),
                        mailboxes,
                        &region,
                    );
                }
                let page = match book.page(feed, &answer.body, &region) {
                    Ok(p) => p,
                    Err(why) => {
                        let bad = Answer {
                            status: Some(502),
                            body: format!("a {feed} page that does not parse: {why}"),
                            ..answer
                        };
                        return got.into_ran(
                            Step::Answered(bad, "contacts list: "),
                            mailboxes,
                            &region,
                        );
                    }
                };
                stored_page = false;
                got.bytes += page.people.iter().map(Person::approx_bytes).sum::<usize>();
                got.people.extend(
                    page.people
                        .into_iter()
                        .map(|person| Listed { feed, person }),
                );
                match (page.next_page, page.next_sync) {
                    (Some(next), _) => {
                        cursor.page = Some(next);
                        if got.people.len() >= max_people || got.bytes >= MAX_RUN_BYTES {
                            got.cursors.insert(feed.to_string(), cursor);
                            got.more = true;
                            let n = got.people.len();
                            return got.into_ran(
                                Step::Done(json!({"people": n, "more": true})),
                                mailboxes,
                                &region,
                            );
                        }
                    }
                    (None, next_sync) => {
                        if let (true, Some(since)) = (started_here, cursor.full_started_at) {
                            got.completed_full
                                .push(json!({"feed": feed, "since": since}));
                        }
                        // No token (a provider that gave none): the next run lists in full.
                        cursor = Cursor {
                            sync: next_sync,
                            ..Cursor::default()
                        };
                        got.cursors.insert(feed.to_string(), cursor);
                        break;
                    }
                }
            }
        }
        got.complete = true;
        let n = got.people.len();
        let full = got.completed_full.len();
        got.into_ran(
            Step::Done(json!({"people": n, "full_listings": full})),
            mailboxes,
            &region,
        )
    }
}
