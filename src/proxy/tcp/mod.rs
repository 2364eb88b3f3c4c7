//! Plain TCP through a TLS tunnel: the proxy side (`server`) and the
//! engineer's side (`connect`), speaking the `handshake` protocol.

pub mod connect;
mod dial;
pub mod handshake;
pub mod server;
pub mod verify;
mod watch;
