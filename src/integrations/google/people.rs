//! Google Contacts through the People API: the `AddressBook` the contact sync reads
//! (`crm.google_people_base_url`; wire format in crm_core::integrations::google::people).
//! Feeds: the user's contacts, and Gmail's "other contacts" when the consent includes
//! `contacts.other.readonly`.

use super::settings::{GOOGLE_PEOPLE_BASE_URL, GOOGLE_PEOPLE_RATE_LIMIT};
use crate::contacts::sync::{AddressBook, Cursor, Request};
use crate::guc;
use crate::runtime::http;
use crm_core::contacts::person::Page;
use crm_core::integrations::google::people::{self as wire, Feed};
use crm_core::runtime::outcome::Answer;

pub struct GooglePeople;

fn feed(name: &str) -> Feed {
    if name == Feed::OtherContacts.name() {
        Feed::OtherContacts
    } else {
        Feed::Connections
    }
}

impl AddressBook for GooglePeople {
    fn provider(&self) -> &'static str {
        "google"
    }
    fn lane(&self) -> (&'static str, f64) {
        ("google_people", GOOGLE_PEOPLE_RATE_LIMIT.get())
    }
    fn feeds(&self, scopes: &[String]) -> Vec<&'static str> {
        Feed::granted(scopes).into_iter().map(Feed::name).collect()
    }
    fn request(&self, name: &str, cursor: &Cursor, page_size: u32) -> Result<Request, String> {
        let path = wire::list_path(
            feed(name),
            page_size,
            cursor.sync.as_deref(),
            cursor.page.as_deref(),
        );
        Ok(Request {
            url: http::url(&guc::text(&GOOGLE_PEOPLE_BASE_URL), &path),
            headers: Vec::new(),
        })
    }
    fn page(&self, name: &str, body: &str, region: &str) -> Result<Page, String> {
        wire::page(feed(name), body, region)
    }
    fn expired(&self, answer: &Answer) -> bool {
        wire::sync_token_expired(answer.status, &answer.body)
    }
}
