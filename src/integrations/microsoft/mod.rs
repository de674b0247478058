//! Microsoft: Graph mail (send as a connected mailbox) and the settings of the Microsoft app.

pub mod mail;
pub mod settings;
