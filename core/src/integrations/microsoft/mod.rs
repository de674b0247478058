//! Microsoft Graph: mail (send as a connected mailbox).

pub mod contacts;
pub mod mail;
