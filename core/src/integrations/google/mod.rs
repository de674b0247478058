//! Google: Gmail (send as a connected mailbox).

pub mod calendar;
pub mod gmail;
pub mod maps;
pub mod people;
