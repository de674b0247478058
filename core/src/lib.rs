pub mod delivery;
pub mod template;
pub mod vault;
pub mod webhooks;
