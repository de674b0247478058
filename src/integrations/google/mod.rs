//! Google: Gmail (send as a connected mailbox, drafts), Calendar (jobs become events), Maps,
//! Contacts (the People API address book), and the settings of Google's OAuth app.

pub mod calendar;
pub mod calendar_sync;
pub mod gmail;
pub mod maps;
pub mod people;
pub mod settings;
