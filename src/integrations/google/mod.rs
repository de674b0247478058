//! Google: Gmail (send as a connected mailbox) and the settings of Google's OAuth app.

pub mod gmail;
pub mod settings;
