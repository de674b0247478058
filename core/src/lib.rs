pub mod vault;
pub mod template;
pub mod webhooks;
pub mod delivery;
