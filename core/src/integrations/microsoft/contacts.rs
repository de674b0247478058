//! Microsoft Graph contacts, as data: the delta query of a contact sync and the people in its
//! answers. <https://learn.microsoft.com/graph/api/contact-delta>
//!
//! `GET /v1.0/me/contacts/delta` with `Prefer: odata.maxpagesize=N` lists every contact of the
//! user's default folder; each page links the next (`@odata.nextLink`) and the last links the
//! changes to come (`@odata.deltaLink`), which is stored whole and called as it is next time.
//! Removed contacts come as `{"id": ..., "@removed": {"reason": ...}}`. A delta link Graph no
//! longer honours is answered 410: a full listing again.
//!
//! The links are absolute URLs, and the bearer token goes wherever they point: only links
//! under the configured Graph base URL are followed.

use crate::contacts::person::{usable_id, Page, Person};
use serde_json::Value;

/// Largest page asked for (Graph caps contact pages lower on its own when it wants to).
pub const PAGE_SIZE: u32 = 1000;

/// The first request of a full listing.
pub const DELTA_PATH: &str = "/v1.0/me/contacts/delta";

/// The `Prefer` header's value.
pub fn prefer(page_size: u32) -> String {
    format!("odata.maxpagesize={}", page_size.clamp(1, PAGE_SIZE))
}

/// Whether a next or delta link may be followed: the same scheme, host and port as the Graph
/// base URL (the bearer token goes with it), and a Graph v1.0 path (Graph may name the folder:
/// `/v1.0/me/contactfolders('…')/contacts/delta`).
pub fn link_allowed(link: &str, base: &str) -> bool {
    let base = base.trim_end_matches('/');
    link.len() <= 8192
        && link
            .strip_prefix(base)
            .is_some_and(|rest| rest.starts_with("/v1.0/") && !rest.contains(['\\', '@', '#']))
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// A Graph physicalAddress as one line.
fn address(a: &Value) -> Option<String> {
    let parts: Vec<&str> = ["street", "city", "state", "postalCode", "countryOrRegion"]
        .iter()
        .filter_map(|k| str_at(a, k))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// One contact of an answer (None without a usable id).
pub fn person(v: &Value, region: &str) -> Option<Person> {
    let id = str_at(v, "id")?;
    if !usable_id(id) {
        return None;
    }
    if v.get("@removed").is_some() {
        return Some(Person::deleted(id));
    }
    let emails: Vec<&str> = v
        .get("emailAddresses")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|e| str_at(e, "address")).collect())
        .unwrap_or_default();
    let mut phones: Vec<&str> = Vec::new();
    phones.extend(str_at(v, "mobilePhone"));
    for list in ["businessPhones", "homePhones"] {
        if let Some(a) = v.get(list).and_then(Value::as_array) {
            phones.extend(a.iter().filter_map(Value::as_str));
        }
    }
    let addr = ["homeAddress", "businessAddress", "otherAddress"]
        .iter()
        .find_map(|k| v.get(*k).and_then(address));
    let mut p = Person::listed(
        id,
        str_at(v, "changeKey"),
        str_at(v, "givenName"),
        str_at(v, "surname"),
        &emails,
        &phones,
        addr.as_deref(),
        str_at(v, "companyName"),
        region,
    );
    if p.first_name.is_none() && p.last_name.is_none() {
        p.first_name = crate::contacts::person::tidy(
            str_at(v, "displayName"),
            crate::contacts::person::MAX_NAME,
        );
    }
    Some(p)
}

/// One answer page. Err when it is not a delta page.
pub fn page(body: &str, region: &str) -> Result<Page, String> {
    let v: Value = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    let people = match v.get("value") {
        Some(Value::Array(a)) => a.iter().filter_map(|p| person(p, region)).collect(),
        _ => return Err("no value list".into()),
    };
    Ok(Page {
        people,
        next_page: str_at(&v, "@odata.nextLink").map(str::to_string),
        next_sync: str_at(&v, "@odata.deltaLink").map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn links_only_under_the_base() {
        let base = "https://graph.microsoft.com";
        assert!(link_allowed(
            "https://graph.microsoft.com/v1.0/me/contacts/delta?$deltatoken=abc",
            base
        ));
        assert!(link_allowed(
            "http://127.0.0.1:9/v1.0/me/contacts/delta?$skiptoken=1",
            "http://127.0.0.1:9/"
        ));
        for bad in [
            "https://graph.microsoft.com.evil.example/v1.0/me/contacts/delta?x",
            "https://evil.example/v1.0/me/contacts/delta",
            "https://graph.microsoft.com/beta/me/contacts/delta",
            "https://graph.microsoft.com:444/v1.0/me/contacts/delta",
            "https://graph.microsoft.com@evil.example/v1.0/me/contacts/delta",
        ] {
            assert!(!link_allowed(bad, base), "{bad}");
        }
    }

    #[test]
    fn contacts_of_a_page() {
        let body = json!({"@odata.context": "x", "value": [
            {"id": "AAMk1", "changeKey": "EQAA", "givenName": "John", "surname": "Smith",
             "emailAddresses": [{"name": "John", "address": "JOHN.SMITH@gmail.com"}],
             "businessPhones": ["+1 317 555 0123"], "homePhones": [], "mobilePhone": null,
             "homeAddress": {}, "businessAddress": {"street": "12 Main St", "city": "Indianapolis", "state": "IN",
                                                    "postalCode": "46204", "countryOrRegion": "United States"},
             "companyName": "Acme"},
            {"@odata.type": "#microsoft.graph.contact", "id": "AAMk2", "@removed": {"reason": "deleted"}}],
            "@odata.deltaLink": "https://graph.microsoft.com/v1.0/me/contacts/delta?$deltatoken=x"})
        .to_string();
        let page = page(&body, "US").unwrap();
        assert!(page.next_page.is_none());
        assert!(page
            .next_sync
            .as_deref()
            .unwrap()
            .ends_with("$deltatoken=x"));
        let john = &page.people[0];
        assert_eq!(john.email_keys, vec!["johnsmith@gmail.com"]);
        assert_eq!(john.phone_keys, vec!["+13175550123"]);
        assert_eq!(
            john.address.as_deref(),
            Some("12 Main St, Indianapolis, IN, 46204, United States")
        );
        assert_eq!(john.etag.as_deref(), Some("EQAA"));
        assert_eq!(page.people[1], Person::deleted("AAMk2"));
        assert!(super::page("{}", "US").is_err());
        assert_eq!(prefer(5000), "odata.maxpagesize=1000");
    }
}
