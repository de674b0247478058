//! The queue cycle shared by emails and integration tasks: claim due rows with a lease (one
//! short transaction), run them with **no transaction open**, record the outcomes (a new
//! transaction). The SQL side of each queue (`crm._claim_*`, `crm._record_*_outcomes`) follows
//! the same lease rules; what an answer means (done, retry when, failed) is decided once, in
//! `crm_core::runtime::outcome`.

use crate::json_arg::parse_json_as;
use crm_core::runtime::outcome::Outcome;
use crm_core::template::budget::Checkpoint;
use pgrx::prelude::*;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// One queue the runtime serves.
pub trait Queue: std::panic::RefUnwindSafe {
    /// A claimed row, as the claim function returns it.
    type Row: DeserializeOwned;
    /// What one run produced, for `record`.
    type Done: std::panic::RefUnwindSafe;

    /// Claim up to `max_items` due rows (SPI, in the caller's transaction): the claim's JSON
    /// rows, one text per row with its id.
    fn claim_json(&self, max_items: i32) -> Vec<(Option<String>, Option<String>)>;
    /// Work on the rows, no transaction open (no SPI, no ERROR). `checkpoint` says stop: the
    /// rows not yet started are released.
    fn run(&self, rows: &[Self::Row], checkpoint: Checkpoint) -> Self::Done;
    /// How an unreadable row's error starts ("the row cannot be sent").
    const UNREADABLE: &'static str;
    /// After the claim, in its transaction: load what the rows need (SPI); rows that cannot
    /// be prepared fail alone.
    fn prepare(&self, rows: Vec<Self::Row>) -> (Vec<Self::Row>, Vec<Verdict>) {
        (rows, Vec::new())
    }
    /// The outcome of rows that could not even be read.
    fn unreadable(&self, unreadable: Vec<Verdict>) -> Self::Done;
    /// Record (SPI, in the caller's transaction).
    fn record(&self, done: &Self::Done);
    /// How many rows of `done` were given back unrun.
    fn released(done: &Self::Done) -> usize;
    /// `more` added to `into`.
    fn merge(into: &mut Self::Done, more: Self::Done);
    /// Seconds until the next row is due (a scheduled row, a retry, an expired lease); None
    /// when nothing waits (SPI, in a transaction).
    fn next_due_secs(&self) -> Option<f64>;
}

/// What became of one row: the part of an outcome every queue records the same way.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Verdict {
    pub id: String,
    /// sent/done, retry, failed, or release (given back unrun: due again at once, the attempt
    /// not counted).
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_seconds: Option<f64>,
}

impl Verdict {
    /// The verdict for `outcome`, with `success` the word the queue records for success
    /// ("sent" for an email, "done" for a task) and `what` naming the request that answered
    /// when it was not the main one ("token refresh: ").
    pub fn from_outcome(id: &str, outcome: &Outcome, success: &'static str, what: &str) -> Self {
        match outcome {
            Outcome::Sent { .. } => Verdict::new(id, success, None),
            Outcome::Retry { after_secs, error } => Verdict {
                after_seconds: Some(*after_secs),
                ..Verdict::new(id, "retry", Some(format!("{what}{error}")))
            },
            Outcome::Failed { error } => Verdict::new(id, "failed", Some(format!("{what}{error}"))),
        }
    }

    pub fn new(id: &str, outcome: &'static str, error: Option<String>) -> Self {
        Verdict {
            id: id.to_string(),
            outcome,
            error,
            after_seconds: None,
        }
    }

    pub fn failed(id: &str, error: String) -> Self {
        Verdict::new(id, "failed", Some(error))
    }

    /// Given back unrun: its runner is stopping or its turn is over.
    pub fn release(id: &str) -> Self {
        Verdict::new(id, "release", None)
    }
}

/// Claim and parse: each row on its own, so a row that cannot be read (JSON nested deeper than
/// serde_json takes, a shape the runner does not know) fails alone and never stops the queue.
pub fn claim<Q: Queue>(queue: &Q, max_items: i32) -> (Vec<Q::Row>, Vec<Verdict>) {
    let rows = queue.claim_json(max_items);
    let mut claimed = Vec::with_capacity(rows.len());
    let mut unreadable = Vec::new();
    for (id, text) in rows {
        let id = id.unwrap_or_default();
        let parsed = parse_json_as::<Q::Row>(text.as_deref().unwrap_or("null"));
        match parsed {
            Ok(row) => claimed.push(row),
            Err(e) => unreadable.push(Verdict::failed(&id, format!("{}: {e}", Q::UNREADABLE))),
        }
    }
    let (claimed, unprepared) = queue.prepare(claimed);
    unreadable.extend(unprepared);
    (claimed, unreadable)
}

/// The rows of a claim function that returns a JSON array (`sql` selects its text), as
/// `(id, row JSON)` pairs, split by `crm_core::runtime::claimed` (Postgres' JSON functions
/// would parse the array twice more). Should the text not be an array serde_json takes, Postgres
/// splits it, so that a row the runner cannot read still fails alone.
pub fn claim_array(
    sql: &str,
    args: &[pgrx::datum::DatumWithOid],
) -> Vec<(Option<String>, Option<String>)> {
    let text: Option<String> =
        Spi::get_one_with_args(sql, args).unwrap_or_else(|e| pgrx::error!("claiming failed: {e}"));
    let Some(text) = text else {
        return Vec::new();
    };
    crm_core::runtime::claimed::split_claimed(&text).unwrap_or_else(|| {
        Spi::connect(|client| {
            client
                .select(
                    "SELECT j ->> 'id', j::text FROM json_array_elements($1::json) j",
                    None,
                    &[text.as_str().into()],
                )?
                .map(|row| Ok((row.get::<String>(1)?, row.get::<String>(2)?)))
                .collect::<Result<Vec<_>, pgrx::spi::Error>>()
        })
        .unwrap_or_else(|e| pgrx::error!("claiming failed: {e}"))
    })
}

/// One claim → run → record cycle inside the caller's transaction (`crm.process_*` for
/// pg_cron and psql; a function cannot commit).
pub fn process_in_transaction<Q: Queue>(
    queue: &Q,
    max_items: i32,
    checkpoint: Checkpoint,
) -> Q::Done {
    let (rows, unreadable) = claim(queue, max_items);
    let mut done = queue.unreadable(unreadable);
    Q::merge(&mut done, queue.run(&rows, checkpoint));
    queue.record(&done);
    done
}
