//! jitgate: a just-in-time access proxy that owns every connection made under
//! a grant, so no session outlives its grant.
#![forbid(unsafe_code)]

pub mod audit;
pub mod clock;
pub mod config;
pub mod store;
