pub mod vault;
pub mod template;
