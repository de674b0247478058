//! Google's People API, as data: the listing requests of a contact sync and the people in
//! their answers. <https://developers.google.com/people/api/rest/v1/people.connections/list>,
//! <https://developers.google.com/people/api/rest/v1/otherContacts/list>
//!
//! Two feeds: the user's contacts (`people/me/connections`) and, when the consent includes
//! `contacts.other.readonly`, Gmail's "other contacts" (people the user emailed). Each is a
//! full listing with `requestSyncToken=true` (pages of up to 1,000; the last carries
//! `nextSyncToken`), then incremental listings with `syncToken` whose removed people carry
//! `metadata.deleted`. A sync token expires 7 days after its full sync: the error names
//! `EXPIRED_SYNC_TOKEN` and the answer is a new full sync. Page requests repeat every other
//! parameter of the first one, as the API requires.

use crate::contacts::person::{usable_id, Page, Person};
use serde_json::Value;

/// What a connection's people are read with (every field the CRM keeps, and the metadata
/// that says whether one was deleted).
pub const PERSON_FIELDS: &str =
    "names,emailAddresses,phoneNumbers,addresses,organizations,metadata";
/// otherContacts take fewer fields (its readMask allows names, emails, phones, metadata, photos).
pub const OTHER_CONTACT_FIELDS: &str = "names,emailAddresses,phoneNumbers,metadata";
/// The largest page either list returns.
pub const PAGE_SIZE: u32 = 1000;
/// The scope that lets a sync read "other contacts".
pub const OTHER_CONTACTS_SCOPE: &str = "https://www.googleapis.com/auth/contacts.other.readonly";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    Connections,
    OtherContacts,
}

impl Feed {
    /// The feeds a consent allows: contacts always, other contacts with their scope.
    pub fn granted(scopes: &[String]) -> Vec<Feed> {
        let mut feeds = vec![Feed::Connections];
        if scopes.iter().any(|s| s == OTHER_CONTACTS_SCOPE) {
            feeds.push(Feed::OtherContacts);
        }
        feeds
    }
    pub fn name(self) -> &'static str {
        match self {
            Feed::Connections => "connections",
            Feed::OtherContacts => "other_contacts",
        }
    }
    /// The answer's list field.
    fn items(self) -> &'static str {
        match self {
            Feed::Connections => "connections",
            Feed::OtherContacts => "otherContacts",
        }
    }
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Path and query of one listing request: `sync` is the token of the last complete listing
/// (None: a full one), `page` the page to read.
pub fn list_path(feed: Feed, page_size: u32, sync: Option<&str>, page: Option<&str>) -> String {
    let size = page_size.clamp(1, PAGE_SIZE);
    let mut p = match feed {
        Feed::Connections => format!(
            "/v1/people/me/connections?personFields={}&pageSize={size}&requestSyncToken=true",
            enc(PERSON_FIELDS)
        ),
        Feed::OtherContacts => format!(
            "/v1/otherContacts?readMask={}&pageSize={size}&requestSyncToken=true",
            enc(OTHER_CONTACT_FIELDS)
        ),
    };
    if let Some(t) = sync {
        p.push_str(&format!("&syncToken={}", enc(t)));
    }
    if let Some(t) = page {
        p.push_str(&format!("&pageToken={}", enc(t)));
    }
    p
}

/// Whether an error answer says the sync token expired (a full sync is the remedy).
pub fn sync_token_expired(status: Option<u16>, body: &str) -> bool {
    matches!(status, Some(400) | Some(410)) && body.contains("EXPIRED_SYNC_TOKEN")
}

/// Entries with `metadata.primary` first (Google marks the one the user chose).
fn primary_first(list: Option<&Value>) -> Vec<&Value> {
    let mut v: Vec<&Value> = list
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    v.sort_by_key(|e| {
        !e.pointer("/metadata/primary")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    });
    v
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// One person of an answer (None when it has no usable resource name).
pub fn person(v: &Value, region: &str) -> Option<Person> {
    let id = str_at(v, "resourceName")?;
    if !usable_id(id) {
        return None;
    }
    if v.pointer("/metadata/deleted").and_then(Value::as_bool) == Some(true) {
        return Some(Person::deleted(id));
    }
    let names = primary_first(v.get("names"));
    let name = names.first();
    let emails: Vec<&str> = primary_first(v.get("emailAddresses"))
        .into_iter()
        .filter_map(|e| str_at(e, "value"))
        .collect();
    // canonicalForm is Google's E.164 reading of the number (with the user's locale): keyed
    // first, so the key does not depend on crm.default_phone_region when Google knew better.
    let phones: Vec<&str> = primary_first(v.get("phoneNumbers"))
        .into_iter()
        .filter_map(|p| str_at(p, "value").or_else(|| str_at(p, "canonicalForm")))
        .collect();
    let canonical: Vec<&str> = primary_first(v.get("phoneNumbers"))
        .into_iter()
        .filter_map(|p| str_at(p, "canonicalForm"))
        .collect();
    let address = primary_first(v.get("addresses")).first().and_then(|a| {
        str_at(a, "formattedValue").map(|f| {
            f.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(", ")
        })
    });
    let company = primary_first(v.get("organizations"))
        .first()
        .and_then(|o| str_at(o, "name"));
    let mut p = Person::listed(
        id,
        str_at(v, "etag"),
        name.and_then(|n| str_at(n, "givenName")),
        name.and_then(|n| str_at(n, "familyName")),
        &emails,
        &phones,
        address.as_deref(),
        company,
        region,
    );
    if p.first_name.is_none() && p.last_name.is_none() {
        // only a display name (other contacts often have just that)
        p.first_name = crate::contacts::person::tidy(
            name.and_then(|n| str_at(n, "displayName")),
            crate::contacts::person::MAX_NAME,
        );
    }
    for c in canonical {
        if let Some(k) = crate::contacts::keys::phone_key(c, region) {
            if !p.phone_keys.contains(&k) {
                p.phone_keys.push(k);
            }
        }
    }
    Some(p)
}

/// One answer page. Err when it is not a listing at all.
pub fn page(feed: Feed, body: &str, region: &str) -> Result<Page, String> {
    let v: Value = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    if !v.is_object() {
        return Err("not a listing".into());
    }
    let people = match v.get(feed.items()) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.iter().filter_map(|p| person(p, region)).collect(),
        Some(_) => return Err(format!("{} is not a list", feed.items())),
    };
    Ok(Page {
        people,
        next_page: str_at(&v, "nextPageToken")
            .filter(|t| !t.is_empty())
            .map(str::to_string),
        next_sync: str_at(&v, "nextSyncToken")
            .filter(|t| !t.is_empty())
            .map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests() {
        assert_eq!(
            list_path(Feed::Connections, 1000, None, None),
            "/v1/people/me/connections?personFields=names%2CemailAddresses%2CphoneNumbers%2Caddresses%2Corganizations%2Cmetadata&pageSize=1000&requestSyncToken=true"
        );
        let p = list_path(Feed::OtherContacts, 5000, Some("tok=="), Some("p/2"));
        assert!(p.starts_with("/v1/otherContacts?readMask=names%2CemailAddresses%2CphoneNumbers%2Cmetadata&pageSize=1000"));
        assert!(p.ends_with("&syncToken=tok%3D%3D&pageToken=p%2F2"));
        assert_eq!(Feed::granted(&[]), vec![Feed::Connections]);
        assert_eq!(
            Feed::granted(&[OTHER_CONTACTS_SCOPE.to_string()]),
            vec![Feed::Connections, Feed::OtherContacts]
        );
    }

    #[test]
    fn people_of_an_answer() {
        let body = json!({
            "connections": [
                {"resourceName": "people/c1", "etag": "%E1",
                 "names": [{"givenName": "Old"}, {"metadata": {"primary": true}, "givenName": "John", "familyName": "Smith"}],
                 "emailAddresses": [{"value": "j@work.example"}, {"metadata": {"primary": true}, "value": "John.Smith@gmail.com"}],
                 "phoneNumbers": [{"value": "(317) 555-0123", "canonicalForm": "+13175550123"}],
                 "addresses": [{"formattedValue": "12 Main St\nIndianapolis, IN 46204\nUS"}],
                 "organizations": [{"name": "Acme"}]},
                {"resourceName": "people/c2", "metadata": {"deleted": true}},
                {"etag": "no resource name"}
            ],
            "nextPageToken": "2", "totalItems": 3
        })
        .to_string();
        let page = page(Feed::Connections, &body, "US").unwrap();
        assert_eq!(page.next_page.as_deref(), Some("2"));
        assert_eq!(page.next_sync, None);
        assert_eq!(page.people.len(), 2);
        let john = &page.people[0];
        assert_eq!(
            (john.first_name.as_deref(), john.last_name.as_deref()),
            (Some("John"), Some("Smith"))
        );
        assert_eq!(john.email.as_deref(), Some("John.Smith@gmail.com"));
        assert_eq!(
            john.email_keys,
            vec!["johnsmith@gmail.com", "j@work.example"]
        );
        assert_eq!(john.phone_keys, vec!["+13175550123"]);
        assert_eq!(
            john.address.as_deref(),
            Some("12 Main St, Indianapolis, IN 46204, US")
        );
        assert_eq!(john.company.as_deref(), Some("Acme"));
        assert_eq!(page.people[1], Person::deleted("people/c2"));
    }

    #[test]
    fn other_contacts_and_errors() {
        let body = json!({"otherContacts": [{"resourceName": "otherContacts/c9",
            "names": [{"displayName": "Ann Lee"}], "emailAddresses": [{"value": "ann@x.example"}]}],
            "nextSyncToken": "s1"})
        .to_string();
        let page = page(Feed::OtherContacts, &body, "US").unwrap();
        assert_eq!(page.next_sync.as_deref(), Some("s1"));
        assert_eq!(page.people[0].first_name.as_deref(), Some("Ann Lee"));
        assert!(super::page(Feed::Connections, "[]", "US").is_err());
        assert!(super::page(Feed::Connections, r#"{"connections": 3}"#, "US").is_err());
        assert!(super::page(Feed::Connections, "{}", "US")
            .unwrap()
            .people
            .is_empty());
        let expired = r#"{"error": {"code": 400, "status": "FAILED_PRECONDITION", "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "EXPIRED_SYNC_TOKEN"}]}}"#;
        assert!(sync_token_expired(Some(400), expired));
        assert!(!sync_token_expired(Some(400), "{}"));
        assert!(!sync_token_expired(Some(500), expired));
    }
}
