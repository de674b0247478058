//! Each provider's wire formats, one folder per provider: request bodies, answer parsing.

pub mod google;
pub mod microsoft;
pub mod resend;
pub mod stripe;
