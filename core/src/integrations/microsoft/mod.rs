//! Microsoft Graph: mail (send as a connected mailbox).

pub mod mail;
