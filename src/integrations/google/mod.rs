//! Google: Gmail (send as a connected mailbox), Calendar (jobs become events), and the
//! settings of Google's OAuth app.

pub mod calendar;
pub mod calendar_sync;
pub mod gmail;
pub mod maps;
pub mod settings;
