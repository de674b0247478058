//! Contacts: the keys that say two records are one person (email, phone), and how alike two
//! names are. Pure: the SQL side (sql/contacts.sql) finds duplicates and merges with them.

pub mod keys;
pub mod person;
