//! Microsoft: Graph mail (send as a connected mailbox, drafts), Outlook contacts (delta
//! query), and the settings of the Microsoft app.

pub mod contacts;
pub mod mail;
pub mod settings;
