//! PostgreSQL front end: psql and every other client connect as
//! `USER@TARGET` with the grant's connect secret (SCRAM), and the proxy logs
//! in to the target with the target's credential. The relay follows message
//! boundaries so it can warn (NoticeResponse), say goodbye (FATAL 57P01) and
//! cancel the running query when the grant ends.

pub mod cancel;
pub mod codec;
#[cfg(test)]
mod codec_fixtures;
mod front;
mod login;
pub mod params;
pub mod relay;
pub mod scram;
pub mod scram_client;
pub mod server;
pub mod stream;
pub mod terminate;
pub mod upstream;
pub mod upstream_tls;
