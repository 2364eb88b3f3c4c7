//! PostgreSQL wire framing, written for a relay.
//!
//! postgres-protocol's `Message::parse` rejects tags it does not know,
//! consumes the frame before failing and trusts the peer's length, so the
//! proxy does its own framing: untagged startup packets with a hard size
//! limit, small bounded frames during authentication, and a streaming
//! [`FrameTracker`] that follows frame boundaries through relayed bytes
//! without buffering whole messages (a DataRow or CopyData may be huge).
//! Backend messages the proxy itself sends are encoded here.

use tokio::io::{AsyncRead, AsyncReadExt};

/// PostgreSQL's own limit for startup packets.
pub const MAX_STARTUP: usize = 10_000;
/// Limit for one message during authentication (PG_MAX_AUTH_TOKEN_LENGTH).
pub const MAX_AUTH_MESSAGE: usize = 65_535;
/// PostgreSQL's MaxAllocSize: no legal message is larger.
pub const MAX_FRAME: u64 = 1 << 30;

pub const PROTOCOL_3_0: i32 = 196_608;
pub const SSL_REQUEST: i32 = 80_877_103;
pub const GSSENC_REQUEST: i32 = 80_877_104;
pub const CANCEL_REQUEST: i32 = 80_877_102;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("invalid message length {0}")]
    BadLength(i64),
    #[error("startup packet too large ({0} bytes; the limit is {MAX_STARTUP})")]
    StartupTooLarge(usize),
    #[error("message too large ({0} bytes)")]
    TooLarge(u64),
    #[error("unsupported protocol version {0}.{1}")]
    Version(i32, i32),
    #[error("malformed {0}")]
    Malformed(&'static str),
    #[error("expected {expected} message, got {got:?}")]
    Unexpected { expected: &'static str, got: char },
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// The first packet of a connection (or the one after SSL/GSS negotiation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Initial {
    SslRequest,
    GssEncRequest,
    Cancel {
        pid: i32,
        key: Vec<u8>,
    },
    Startup {
        minor: i32,
        params: Vec<(String, String)>,
    },
}

pub async fn read_initial<R: AsyncRead + Unpin>(r: &mut R) -> Result<Initial, CodecError> {
    let len = r.read_i32().await?;
    if !(8..=MAX_STARTUP as i32).contains(&len) {
        return Err(if len > MAX_STARTUP as i32 {
            CodecError::StartupTooLarge(len as usize)
        } else {
            CodecError::BadLength(len as i64)
        });
    }
    let mut body = vec![0u8; len as usize - 4];
    r.read_exact(&mut body).await?;
    parse_initial(&body)
}

/// Parses a startup-phase packet body (after its length word).
pub fn parse_initial(body: &[u8]) -> Result<Initial, CodecError> {
    let code = i32::from_be_bytes(
        body.get(..4)
            .ok_or(CodecError::Malformed("startup packet"))?
            .try_into()
            .expect("4 bytes"),
    );
    let rest = &body[4..];
    match code {
        SSL_REQUEST if rest.is_empty() => Ok(Initial::SslRequest),
        GSSENC_REQUEST if rest.is_empty() => Ok(Initial::GssEncRequest),
        CANCEL_REQUEST if (8..=260).contains(&rest.len()) => Ok(Initial::Cancel {
            pid: i32::from_be_bytes(rest[..4].try_into().expect("4 bytes")),
            key: rest[4..].to_vec(),
        }),
        SSL_REQUEST | GSSENC_REQUEST | CANCEL_REQUEST => {
            Err(CodecError::Malformed("negotiation packet"))
        }
        v if v >> 16 == 3 => Ok(Initial::Startup {
            minor: v & 0xffff,
            params: parse_params(rest)?,
        }),
        v => Err(CodecError::Version(v >> 16, v & 0xffff)),
    }
}

/// `key\0value\0 ... \0`, UTF-8, no empty or duplicate keys.
fn parse_params(mut b: &[u8]) -> Result<Vec<(String, String)>, CodecError> {
    let mut out: Vec<(String, String)> = Vec::new();
    loop {
        let (k, rest) = cstr(b).ok_or(CodecError::Malformed("startup parameters"))?;
        if k.is_empty() {
            if !rest.is_empty() {
                return Err(CodecError::Malformed("startup parameters"));
            }
            return Ok(out);
        }
        let (v, rest) = cstr(rest).ok_or(CodecError::Malformed("startup parameters"))?;
        if out.iter().any(|(x, _)| x == k) {
            return Err(CodecError::Malformed("startup parameters (duplicate key)"));
        }
        out.push((k.to_string(), v.to_string()));
        b = rest;
    }
}

/// A NUL-terminated UTF-8 string and what follows it.
pub fn cstr(b: &[u8]) -> Option<(&str, &[u8])> {
    let end = b.iter().position(|&c| c == 0)?;
    Some((std::str::from_utf8(&b[..end]).ok()?, &b[end + 1..]))
}

/// Reads one whole tagged message of at most `max` bytes (authentication
/// phase only; the relay never buffers whole messages).
pub async fn read_message<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> Result<(u8, Vec<u8>), CodecError> {
    let tag = r.read_u8().await?;
    let len = r.read_i32().await?;
    if len < 4 {
        return Err(CodecError::BadLength(len as i64));
    }
    if len as usize - 4 > max {
        return Err(CodecError::TooLarge(len as u64));
    }
    let mut body = vec![0u8; len as usize - 4];
    r.read_exact(&mut body).await?;
    Ok((tag, body))
}

/// Follows message boundaries through a stream of relayed bytes.
#[derive(Debug, Default, Clone)]
pub struct FrameTracker {
    header: [u8; 5],
    have: usize,
    /// Body bytes of the current message still to come.
    remaining: u64,
}

impl FrameTracker {
    /// True between two messages: the only place bytes may be injected.
    pub fn at_boundary(&self) -> bool {
        self.have == 0 && self.remaining == 0
    }

    /// Consumes `data`, calling `on_message(tag)` as each message header
    /// completes. Returns the offset just after the first message that ends
    /// inside `data`, if any, so a caller can inject there.
    pub fn scan(
        &mut self,
        data: &[u8],
        mut on_message: impl FnMut(u8),
    ) -> Result<Option<usize>, CodecError> {
        let mut i = 0;
        let mut first = None;
        while i < data.len() {
            if self.remaining > 0 {
                let take = (self.remaining).min((data.len() - i) as u64) as usize;
                self.remaining -= take as u64;
                i += take;
            } else {
                let take = (5 - self.have).min(data.len() - i);
                self.header[self.have..self.have + take].copy_from_slice(&data[i..i + take]);
                self.have += take;
                i += take;
                if self.have < 5 {
                    break;
                }
                let len = i32::from_be_bytes(self.header[1..5].try_into().expect("4 bytes"));
                if len < 4 {
                    return Err(CodecError::BadLength(len as i64));
                }
                if len as u64 > MAX_FRAME {
                    return Err(CodecError::TooLarge(len as u64));
                }
                self.have = 0;
                self.remaining = len as u64 - 4;
                on_message(self.header[0]);
            }
            if self.at_boundary() && first.is_none() {
                first = Some(i);
            }
        }
        Ok(first)
    }
}

/// One tagged message: tag, length, body.
pub fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(5 + body.len());
    v.push(tag);
    v.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn auth(code: i32, data: &[u8]) -> Vec<u8> {
    let mut b = code.to_be_bytes().to_vec();
    b.extend_from_slice(data);
    message(b'R', &b)
}

pub fn auth_ok() -> Vec<u8> {
    auth(0, &[])
}

pub fn auth_sasl(mechanisms: &[&str]) -> Vec<u8> {
    let mut b = Vec::new();
    for m in mechanisms {
        b.extend_from_slice(m.as_bytes());
        b.push(0);
    }
    b.push(0);
    auth(10, &b)
}

pub fn auth_sasl_continue(data: &[u8]) -> Vec<u8> {
    auth(11, data)
}

pub fn auth_sasl_final(data: &[u8]) -> Vec<u8> {
    auth(12, data)
}

pub fn parameter_status(name: &str, value: &str) -> Vec<u8> {
    let mut b = Vec::with_capacity(name.len() + value.len() + 2);
    b.extend_from_slice(name.as_bytes());
    b.push(0);
    b.extend_from_slice(value.as_bytes());
    b.push(0);
    message(b'S', &b)
}

pub fn backend_key_data(pid: i32, key: &[u8; 4]) -> Vec<u8> {
    let mut b = pid.to_be_bytes().to_vec();
    b.extend_from_slice(key);
    message(b'K', &b)
}

pub fn ready_for_query(status: u8) -> Vec<u8> {
    message(b'Z', &[status])
}

/// NegotiateProtocolVersion: we speak 3.0 and none of the `_pq_.` options.
pub fn negotiate_protocol_version(unsupported: &[String]) -> Vec<u8> {
    let mut b = PROTOCOL_3_0.to_be_bytes().to_vec();
    b.extend_from_slice(&(unsupported.len() as i32).to_be_bytes());
    for o in unsupported {
        b.extend_from_slice(o.as_bytes());
        b.push(0);
    }
    message(b'v', &b)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Fatal,
    Error,
    Warning,
    Notice,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Fatal => "FATAL",
            Severity::Error => "ERROR",
            Severity::Warning => "WARNING",
            Severity::Notice => "NOTICE",
        }
    }
}

fn fields(severity: Severity, code: &str, message: &str, hint: Option<&str>) -> Vec<u8> {
    let mut b = Vec::new();
    let mut field = |t: u8, v: &str| {
        b.push(t);
        // A NUL would end the field early; the proxy's own texts never have one.
        b.extend(v.bytes().filter(|&c| c != 0));
        b.push(0);
    };
    field(b'S', severity.as_str());
    field(b'V', severity.as_str());
    field(b'C', code);
    field(b'M', message);
    if let Some(h) = hint {
        field(b'H', h);
    }
    b.push(0);
    b
}

pub fn error_response(severity: Severity, code: &str, text: &str, hint: Option<&str>) -> Vec<u8> {
    message(b'E', &fields(severity, code, text, hint))
}

pub fn notice_response(severity: Severity, code: &str, text: &str) -> Vec<u8> {
    message(b'N', &fields(severity, code, text, None))
}

/// The fields of an ErrorResponse body (upstream errors during startup).
pub fn error_fields(body: &[u8]) -> Vec<(u8, String)> {
    let mut out = Vec::new();
    let mut b = body;
    while let Some((&t, rest)) = b.split_first() {
        if t == 0 {
            break;
        }
        let Some(end) = rest.iter().position(|&c| c == 0) else {
            break;
        };
        out.push((t, String::from_utf8_lossy(&rest[..end]).into_owned()));
        b = &rest[end + 1..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(code: i32, rest: &[u8]) -> Vec<u8> {
        let mut v = ((rest.len() + 8) as i32).to_be_bytes().to_vec();
        v.extend_from_slice(&code.to_be_bytes());
        v.extend_from_slice(rest);
        v
    }

    #[tokio::test]
    async fn startup_packets_parse_and_hostile_ones_fail_cleanly() {
        let p = packet(PROTOCOL_3_0, b"user\0alice@db\0database\0app\0\0");
        let got = read_initial(&mut p.as_slice()).await.unwrap();
        assert_eq!(
            got,
            Initial::Startup {
                minor: 0,
                params: vec![
                    ("user".into(), "alice@db".into()),
                    ("database".into(), "app".into())
                ]
            }
        );
        assert_eq!(
            read_initial(&mut packet(SSL_REQUEST, b"").as_slice())
                .await
                .unwrap(),
            Initial::SslRequest
        );
        let mut cancel = 7i32.to_be_bytes().to_vec();
        cancel.extend_from_slice(&[1, 2, 3, 4]);
        assert_eq!(
            read_initial(&mut packet(CANCEL_REQUEST, &cancel).as_slice())
                .await
                .unwrap(),
            Initial::Cancel {
                pid: 7,
                key: vec![1, 2, 3, 4]
            }
        );
        let bad: Vec<Vec<u8>> = vec![
            vec![],
            vec![0, 0, 0],
            (-1i32).to_be_bytes().to_vec(),
            4i32.to_be_bytes().to_vec(),
            1_000_000i32.to_be_bytes().to_vec(),
            packet(PROTOCOL_3_0, b"user\0alice"),
            packet(PROTOCOL_3_0, b"user\0a\0user\0b\0\0"),
            packet(PROTOCOL_3_0, b"\xff\xfe\0x\0\0"),
            packet(2 << 16, b"\0"),
            packet(SSL_REQUEST, b"x"),
            packet(CANCEL_REQUEST, b"abc"),
            packet(PROTOCOL_3_0, b"user\0a\0\0trailing"),
        ];
        for b in bad {
            assert!(read_initial(&mut b.as_slice()).await.is_err(), "{b:?}");
        }
    }

    #[test]
    fn the_tracker_finds_boundaries_across_arbitrary_splits() {
        let mut stream = Vec::new();
        stream.extend(message(b'T', b"abc"));
        stream.extend(message(b'D', &[9u8; 1000]));
        stream.extend(message(b'C', b"SELECT 1\0"));
        stream.extend(ready_for_query(b'I'));
        let all = [8usize, 1013, 1027, 1033];
        for split in [1usize, 2, 3, 5, 7, 64, 4096] {
            let mut t = FrameTracker::default();
            let mut tags = Vec::new();
            let mut base = 0;
            for chunk in stream.chunks(split) {
                let first = t.scan(chunk, |tag| tags.push(tag)).unwrap();
                let want = all
                    .iter()
                    .find(|&&b| b > base && b <= base + chunk.len())
                    .map(|b| b - base);
                assert_eq!(first, want, "split {split} at {base}");
                base += chunk.len();
            }
            assert_eq!(tags, b"TDCZ", "split {split}");
            assert!(t.at_boundary());
        }
    }

    #[test]
    fn the_tracker_rejects_impossible_lengths() {
        let mut t = FrameTracker::default();
        assert!(t.scan(&[b'D', 0, 0, 0, 3], |_| {}).is_err());
        let mut t = FrameTracker::default();
        assert!(t.scan(&[b'D', 0x7f, 0xff, 0xff, 0xff], |_| {}).is_err());
    }

    #[test]
    fn error_responses_carry_severity_code_and_message() {
        let e = error_response(Severity::Fatal, "57P01", "terminating connection: x", None);
        assert_eq!(e[0], b'E');
        let f = error_fields(&e[5..]);
        assert_eq!(
            f,
            vec![
                (b'S', "FATAL".into()),
                (b'V', "FATAL".into()),
                (b'C', "57P01".into()),
                (b'M', "terminating connection: x".into())
            ]
        );
    }
}
