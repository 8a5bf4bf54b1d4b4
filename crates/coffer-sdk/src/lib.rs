//! The contract between Coffer's request pipeline and its engines.
pub mod duration;
