//! What every outbound integration shares: what a provider's answer means and when to try
//! again (`outcome`), and the OAuth refresh-token grant (`oauth`).

pub mod claimed;
pub mod config;
pub mod connect;
pub mod oauth;
pub mod outcome;
pub mod pacing;
pub mod signals;
