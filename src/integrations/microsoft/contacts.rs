//! Outlook contacts through Microsoft Graph's delta query: the `AddressBook` the contact sync
//! reads (`crm.microsoft_graph_base_url`; wire format in
//! crm_core::integrations::microsoft::contacts). One feed, the default contacts folder. The
//! next and delta links are stored whole and followed only under the configured Graph base
//! URL: the access token goes wherever they point.

use super::settings::{MICROSOFT_CONTACTS_RATE_LIMIT, MICROSOFT_GRAPH_BASE_URL};
use crate::contacts::sync::{AddressBook, Cursor, Request};
use crate::guc;
use crate::runtime::http;
use crm_core::contacts::person::Page;
use crm_core::integrations::microsoft::contacts as wire;
use crm_core::runtime::outcome::Answer;

pub struct GraphContacts;

impl AddressBook for GraphContacts {
    fn provider(&self) -> &'static str {
        "microsoft"
    }
    fn lane(&self) -> (&'static str, f64) {
        ("microsoft_contacts", MICROSOFT_CONTACTS_RATE_LIMIT.get())
    }
    fn feeds(&self, _scopes: &[String]) -> Vec<&'static str> {
        vec!["contacts"]
    }
    fn request(&self, _feed: &str, cursor: &Cursor, page_size: u32) -> Result<Request, String> {
        let base = guc::text(&MICROSOFT_GRAPH_BASE_URL);
        let url = match cursor.page.as_deref().or(cursor.sync.as_deref()) {
            Some(link) if wire::link_allowed(link, &base) => link.to_string(),
            Some(_) => {
                return Err("a stored Graph link is not under crm.microsoft_graph_base_url".into())
            }
            None => http::url(&base, wire::DELTA_PATH),
        };
        Ok(Request {
            url,
            headers: vec![("Prefer", wire::prefer(page_size))],
        })
    }
    fn page(&self, _feed: &str, body: &str, region: &str) -> Result<Page, String> {
        wire::page(body, region)
    }
    fn expired(&self, answer: &Answer) -> bool {
        // Graph: 410 Gone (syncStateNotFound / resyncRequired) for a delta token it dropped
        answer.status == Some(410)
    }
}
