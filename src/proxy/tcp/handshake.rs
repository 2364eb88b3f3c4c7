//! The tunnel handshake spoken inside TLS between `jitgate connect` and the
//! proxy. Small, versioned, length-prefixed, bounded:
//!
//! request:  "JITG" | version=1 | kind (1 connect, 2 status, 3 check) | len u8 | target
//!           | len u8 | secret | len u8 | session id (status only, else 0)
//! response: "JITG" | version=1 | status u8 | len u16 BE | UTF-8 message
//!           | len u8 | session id (OK to connect only, else 0)
//!
//! After an OK to `connect` the stream carries the target's bytes unaltered.
//! `status` asks, with the same secret, why a session ended, so the proxy can
//! close a TCP session without injecting bytes and the client can still say why.
//! `check` is admitted exactly as `connect` but opens no session: its OK
//! carries the grant's end and warning offsets as JSON, so `jitgate connect`
//! can refuse to start on a bad target, secret or pin and can warn before
//! the end.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub const MAGIC: &[u8; 4] = b"JITG";
pub const VERSION: u8 = 1;
pub const MAX_SECRET: usize = 128;
pub const MAX_MESSAGE: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Connect,
    Status,
    Check,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub kind: Kind,
    pub target: String,
    pub secret: String,
    pub session_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    Ok = 0,
    NoGrant = 1,
    BadSecret = 2,
    Locked = 3,
    MaxSessions = 4,
    UpstreamUnreachable = 5,
    ProtocolError = 6,
    UnknownTarget = 7,
    Unavailable = 8,
    /// Status query: the session ended; the grant may still be usable.
    Ended = 9,
    /// Status query: the session ended because its grant is over (expired,
    /// revoked, user locked, policy changed); no new session can succeed.
    GrantOver = 10,
}

impl Status {
    pub fn from_u8(b: u8) -> Option<Status> {
        Some(match b {
            0 => Status::Ok,
            1 => Status::NoGrant,
            2 => Status::BadSecret,
            3 => Status::Locked,
            4 => Status::MaxSessions,
            5 => Status::UpstreamUnreachable,
            6 => Status::ProtocolError,
            7 => Status::UnknownTarget,
            8 => Status::Unavailable,
            9 => Status::Ended,
            10 => Status::GrantOver,
            _ => return None,
        })
    }

    /// The `reason` label of jitgate_connections_rejected_total.
    pub fn metric_reason(self) -> &'static str {
        match self {
            Status::Ok | Status::Ended | Status::GrantOver => "none",
            Status::NoGrant | Status::UnknownTarget => "no_grant",
            Status::BadSecret => "auth_failed",
            Status::Locked => "locked",
            Status::MaxSessions => "max_sessions",
            Status::UpstreamUnreachable => "upstream_error",
            Status::ProtocolError => "protocol_error",
            Status::Unavailable => "upstream_error",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("not a jitgate tunnel (bad magic)")]
    BadMagic,
    #[error("unsupported tunnel protocol version {0}")]
    Version(u8),
    #[error("malformed handshake: {0}")]
    Malformed(&'static str),
    #[error("i/o during handshake: {0}")]
    Io(#[from] std::io::Error),
}

async fn read_str<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
    what: &'static str,
) -> Result<String, HandshakeError> {
    let len = r.read_u8().await? as usize;
    if len > max {
        return Err(HandshakeError::Malformed(what));
    }
    let mut b = vec![0u8; len];
    r.read_exact(&mut b).await?;
    String::from_utf8(b).map_err(|_| HandshakeError::Malformed(what))
}

/// Checks magic and version; returns the byte after them (kind or status).
async fn read_head<R: AsyncRead + Unpin>(r: &mut R) -> Result<u8, HandshakeError> {
    let mut head = [0u8; 6];
    r.read_exact(&mut head).await?;
    if &head[..4] != MAGIC {
        return Err(HandshakeError::BadMagic);
    }
    if head[4] != VERSION {
        return Err(HandshakeError::Version(head[4]));
    }
    Ok(head[5])
}

/// Reads a request; never allocates more than ~450 bytes whatever the peer sends.
pub async fn read_hello<R: AsyncRead + Unpin>(r: &mut R) -> Result<Hello, HandshakeError> {
    let kind = match read_head(r).await? {
        1 => Kind::Connect,
        2 => Kind::Status,
        3 => Kind::Check,
        _ => return Err(HandshakeError::Malformed("unknown request kind")),
    };
    let target = read_str(r, 63, "target name too long or not UTF-8").await?;
    let secret = read_str(r, MAX_SECRET, "secret too long or not UTF-8").await?;
    let session_id = read_str(r, 64, "session id too long or not UTF-8").await?;
    if !crate::config::valid_name(&target) {
        return Err(HandshakeError::Malformed("invalid target name"));
    }
    Ok(Hello {
        kind,
        target,
        secret,
        session_id,
    })
}

pub fn encode_hello(h: &Hello) -> Vec<u8> {
    let mut v = Vec::with_capacity(16 + h.target.len() + h.secret.len() + h.session_id.len());
    v.extend_from_slice(MAGIC);
    v.push(VERSION);
    v.push(match h.kind {
        Kind::Connect => 1,
        Kind::Status => 2,
        Kind::Check => 3,
    });
    for s in [&h.target, &h.secret, &h.session_id] {
        let b = s.as_bytes();
        let n = b.len().min(255);
        v.push(n as u8);
        v.extend_from_slice(&b[..n]);
    }
    v
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: Status,
    pub message: String,
    pub session_id: String,
}

pub async fn write_reply<W: AsyncWrite + Unpin>(w: &mut W, reply: &Reply) -> std::io::Result<()> {
    let msg = reply.message.as_bytes();
    let msg = &msg[..msg.len().min(MAX_MESSAGE)];
    let sid = reply.session_id.as_bytes();
    let sid = &sid[..sid.len().min(64)];
    let mut v = Vec::with_capacity(10 + msg.len() + sid.len());
    v.extend_from_slice(MAGIC);
    v.push(VERSION);
    v.push(reply.status as u8);
    v.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    v.extend_from_slice(msg);
    v.push(sid.len() as u8);
    v.extend_from_slice(sid);
    w.write_all(&v).await?;
    w.flush().await
}

pub async fn read_reply<R: AsyncRead + Unpin>(r: &mut R) -> Result<Reply, HandshakeError> {
    let status =
        Status::from_u8(read_head(r).await?).ok_or(HandshakeError::Malformed("unknown status"))?;
    let len = r.read_u16().await? as usize;
    if len > MAX_MESSAGE {
        return Err(HandshakeError::Malformed("message too long"));
    }
    let mut msg = vec![0u8; len];
    r.read_exact(&mut msg).await?;
    let session_id = read_str(r, 64, "session id").await?;
    Ok(Reply {
        status,
        message: String::from_utf8_lossy(&msg).into_owned(),
        session_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hello_round_trips() {
        let h = Hello {
            kind: Kind::Connect,
            target: "cache".into(),
            secret: "jgs_x".into(),
            session_id: String::new(),
        };
        let bytes = encode_hello(&h);
        assert_eq!(read_hello(&mut bytes.as_slice()).await.unwrap(), h);
    }

    #[tokio::test]
    async fn hostile_hellos_are_rejected_not_panicked() {
        let cases: Vec<Vec<u8>> = vec![
            b"GET / HTTP/1.1\r\n".to_vec(),
            b"JITG\x02\x01".to_vec(),
            b"JITG\x01\x09".to_vec(),
            b"JITG\x01\x01\xffaaaa".to_vec(),
            b"JITG\x01\x01\x05cache\xc8".to_vec(),
            b"JITG\x01\x01\x02\xff\xfe\x00\x00".to_vec(),
            b"JITG\x01\x01\x05Cache\x00\x00".to_vec(),
            Vec::new(),
        ];
        for c in cases {
            assert!(read_hello(&mut c.as_slice()).await.is_err(), "{c:?}");
        }
    }

    #[tokio::test]
    async fn reply_round_trips() {
        let r = Reply {
            status: Status::Locked,
            message: "user alice is locked".into(),
            session_id: "ses_x".into(),
        };
        let mut buf = Vec::new();
        write_reply(&mut buf, &r).await.unwrap();
        assert_eq!(read_reply(&mut buf.as_slice()).await.unwrap(), r);
    }
}
