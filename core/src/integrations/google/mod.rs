//! Google: Gmail (send as a connected mailbox).

pub mod gmail;
