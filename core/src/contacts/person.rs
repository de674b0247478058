//! A person as an address book lists it (a Google People resource, a Graph contact), reduced to
//! what the CRM keeps and shaped so the apply step (`crm._apply_contact_sync`) can insert it
//! without a check failing: lengths capped, an address that the contacts table would refuse
//! dropped, every email and phone turned into its matching key.

use super::keys::{email_key, phone_key};
use serde::{Deserialize, Serialize};

/// Longest values kept (longer ones are cut, on a character boundary).
pub const MAX_NAME: usize = 200;
pub const MAX_EMAIL: usize = 320;
pub const MAX_PHONE: usize = 64;
pub const MAX_ADDRESS: usize = 500;
pub const MAX_COMPANY: usize = 200;
/// Emails and phones of one person that are matched on (the first ones, primary first).
pub const MAX_KEYS: usize = 10;
/// Longest external id (Google's resource names, Graph's ids are far shorter).
pub const MAX_EXTERNAL_ID: usize = 1024;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Person {
    /// `people/c123`, `otherContacts/c456`, a Graph contact id.
    pub external_id: String,
    pub etag: Option<String>,
    /// Removed upstream (People `metadata.deleted`, Graph `@removed`): nothing else is set.
    pub deleted: bool,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// The primary address (the first valid one).
    pub email: Option<String>,
    pub phone: Option<String>,
    pub address: Option<String>,
    pub company: Option<String>,
    /// Matching keys of every listed email and phone (`keys::email_key`, `keys::phone_key`).
    pub email_keys: Vec<String>,
    pub phone_keys: Vec<String>,
}

/// One page of a listing: its people, and where the listing goes on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    pub people: Vec<Person>,
    /// More pages of this listing (Google's `nextPageToken`, Graph's `@odata.nextLink`).
    pub next_page: Option<String>,
    /// The listing is complete; ask for changes with this next time (Google's `nextSyncToken`,
    /// Graph's `@odata.deltaLink`).
    pub next_sync: Option<String>,
}

/// `s` with control characters as spaces (a NUL cannot be stored in jsonb or text, and a
/// line break has no place in a name), trimmed, None when empty, cut to `max` bytes on a
/// character boundary.
pub fn tidy(s: Option<&str>, max: usize) -> Option<String> {
    let cleaned: String;
    let mut s = s?;
    if s.chars().any(char::is_control) {
        cleaned = s
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        s = &cleaned;
    }
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Some(s[..end].trim_end().to_string()).filter(|s| !s.is_empty())
}

/// Whether crm.contacts' check accepts it as an email (`^[^@\s]+@[^@\s]+$`, at most 320).
pub fn storable_email(e: &str) -> bool {
    e.len() <= MAX_EMAIL
        && e.split('@').count() == 2
        && e.split('@').all(|p| !p.is_empty())
        && !e.chars().any(char::is_whitespace)
}

impl Person {
    /// A removal.
    pub fn deleted(external_id: &str) -> Person {
        Person {
            external_id: external_id.to_string(),
            deleted: true,
            ..Person::default()
        }
    }

    /// Build a listed person from its raw fields: values tidied, the first storable email and
    /// the first phone kept as the contact's, keys of all of them (`region` reads numbers
    /// without a country code).
    #[allow(clippy::too_many_arguments)]
    pub fn listed(
        external_id: &str,
        etag: Option<&str>,
        first_name: Option<&str>,
        last_name: Option<&str>,
        emails: &[&str],
        phones: &[&str],
        address: Option<&str>,
        company: Option<&str>,
        region: &str,
    ) -> Person {
        let emails: Vec<String> = emails
            .iter()
            .filter_map(|e| tidy(Some(e), MAX_EMAIL + 1))
            .filter(|e| storable_email(e))
            .take(MAX_KEYS)
            .collect();
        let phones: Vec<String> = phones
            .iter()
            .filter_map(|p| tidy(Some(p), MAX_PHONE))
            .take(MAX_KEYS)
            .collect();
        let mut email_keys: Vec<String> = emails.iter().filter_map(|e| email_key(e)).collect();
        email_keys.dedup();
        let mut phone_keys: Vec<String> =
            phones.iter().filter_map(|p| phone_key(p, region)).collect();
        phone_keys.dedup();
        Person {
            external_id: external_id.to_string(),
            etag: tidy(etag, 512),
            deleted: false,
            first_name: tidy(first_name, MAX_NAME),
            last_name: tidy(last_name, MAX_NAME),
            email: emails.first().cloned(),
            phone: phones.first().cloned(),
            address: tidy(address, MAX_ADDRESS),
            company: tidy(company, MAX_COMPANY),
            email_keys,
            phone_keys,
        }
    }

    /// About how many bytes it takes in the apply step's JSON (a run's budget).
    pub fn approx_bytes(&self) -> usize {
        let f = |o: &Option<String>| o.as_ref().map_or(0, String::len);
        200 + self.external_id.len()
            + f(&self.etag)
            + f(&self.first_name)
            + f(&self.last_name)
            + f(&self.email)
            + f(&self.phone)
            + f(&self.address)
            + f(&self.company)
            + self
                .email_keys
                .iter()
                .chain(&self.phone_keys)
                .map(|k| k.len() + 3)
                .sum::<usize>()
    }

    /// Whether it names anyone at all (a listed person with no name, email or phone, such as
    /// a Google contact holding only a note, is not made a CRM contact).
    pub fn is_someone(&self) -> bool {
        self.first_name.is_some()
            || self.last_name.is_some()
            || self.email.is_some()
            || self.phone.is_some()
            || self.company.is_some()
    }
}

/// Whether an id may be stored (`contact_sources.external_id`'s check).
pub fn usable_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_EXTERNAL_ID
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listed_person_is_tidied_and_keyed() {
        let p = Person::listed(
            "people/c1",
            Some("%Eg"),
            Some("  John "),
            Some("Smith"),
            &[
                "not an address",
                "John.Smith+crm@Gmail.com",
                "js@work.example",
            ],
            &["(317) 555-0123", "+44 20 7946 0958", "12"],
            Some(" 12 Main St, Indianapolis "),
            None,
            "US",
        );
        assert_eq!(p.first_name.as_deref(), Some("John"));
        assert_eq!(p.email.as_deref(), Some("John.Smith+crm@Gmail.com"));
        assert_eq!(p.email_keys, vec!["johnsmith@gmail.com", "js@work.example"]);
        assert_eq!(p.phone.as_deref(), Some("(317) 555-0123"));
        assert_eq!(p.phone_keys, vec!["+13175550123", "+442079460958"]);
        assert_eq!(p.address.as_deref(), Some("12 Main St, Indianapolis"));
        assert!(p.is_someone());
    }

    #[test]
    fn values_the_table_would_refuse_are_cut_or_dropped() {
        let long = "é".repeat(300);
        let p = Person::listed(
            "x",
            None,
            Some(&long),
            None,
            &[&format!("{}@x.example", "a".repeat(400)), "two@@x", "a b@x"],
            &[],
            None,
            None,
            "US",
        );
        let first = p.first_name.unwrap();
        assert!(first.len() <= MAX_NAME && first.chars().all(|c| c == 'é'));
        assert_eq!(p.email, None);
        assert!(p.email_keys.is_empty());
        assert!(
            !Person::listed("y", None, None, None, &[], &[], Some("a note"), None, "US")
                .is_someone()
        );
    }

    #[test]
    fn control_characters_become_spaces() {
        assert_eq!(
            tidy(Some("Ann\u{0}\nLee\t"), 50).as_deref(),
            Some("Ann  Lee")
        );
        assert_eq!(tidy(Some("\u{0}"), 50), None);
        let p = Person::listed(
            "x",
            None,
            Some("A\u{0}B"),
            None,
            &["a\u{0}@b.example"],
            &[],
            None,
            None,
            "US",
        );
        assert_eq!(p.first_name.as_deref(), Some("A B"));
        assert_eq!(
            p.email, None,
            "an address with a control character is not storable"
        );
        assert!(p.approx_bytes() > 200);
    }

    #[test]
    fn ids() {
        assert!(usable_id("people/c1"));
        assert!(!usable_id(""));
        assert!(!usable_id(&"x".repeat(1025)));
    }
}
