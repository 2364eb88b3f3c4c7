//! A minimal PostgreSQL client over raw sockets, for what the real clients
//! do not expose: BackendKeyData, every ParameterStatus, NotificationResponse
//! pids, the exact ErrorResponse fields. Plaintext (the listener must allow
//! it) and SCRAM-SHA-256 without channel binding.

use bytes::BytesMut;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use postgres_protocol::message::frontend;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

pub struct RawSession {
    pub s: TcpStream,
    pub pid: i32,
    pub key: [u8; 4],
    /// Every ParameterStatus received, in order (name, value).
    pub statuses: Vec<(String, String)>,
    /// NotificationResponses received: (pid, channel, payload).
    pub notifications: Vec<(i32, String, String)>,
}

/// Reads one backend message: (tag, body).
pub fn read_msg(s: &mut TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
    let mut h = [0u8; 5];
    s.read_exact(&mut h)?;
    let len = i32::from_be_bytes(h[1..5].try_into().unwrap()) as usize;
    let mut body = vec![0u8; len - 4];
    s.read_exact(&mut body)?;
    Ok((h[0], body))
}

fn cstrs(body: &[u8]) -> Vec<String> {
    body.split(|&b| b == 0)
        .map(|x| String::from_utf8_lossy(x).into_owned())
        .collect()
}

/// The ErrorResponse fields of `body`: (field type, value).
pub fn error_fields(body: &[u8]) -> Vec<(char, String)> {
    body.split(|&b| b == 0)
        .filter(|f| !f.is_empty())
        .map(|f| (f[0] as char, String::from_utf8_lossy(&f[1..]).into_owned()))
        .collect()
}

impl RawSession {
    /// Logs in through `p` to its database as `user`, with `params` added
    /// to the startup packet.
    pub fn login(
        p: &super::pgproxy::PgProxy,
        user: &str,
        secret: &str,
        params: &[(&str, &str)],
    ) -> RawSession {
        let mut s = TcpStream::connect(("127.0.0.1", p.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut b = BytesMut::new();
        let mut startup = vec![("user", user), ("database", p.db.as_str())];
        startup.extend_from_slice(params);
        frontend::startup_message(startup, &mut b).unwrap();
        s.write_all(&b).unwrap();
        let (tag, body) = read_msg(&mut s).unwrap();
        assert_eq!(tag, b'R', "{:?}", error_fields(&body));
        let mut scram = ScramSha256::new(secret.as_bytes(), ChannelBinding::unsupported());
        b.clear();
        frontend::sasl_initial_response("SCRAM-SHA-256", scram.message(), &mut b).unwrap();
        s.write_all(&b).unwrap();
        let (_, body) = read_msg(&mut s).unwrap();
        scram.update(&body[4..]).unwrap();
        b.clear();
        frontend::sasl_response(scram.message(), &mut b).unwrap();
        s.write_all(&b).unwrap();
        let (_, body) = read_msg(&mut s).unwrap();
        scram.finish(&body[4..]).unwrap();
        let mut r = RawSession {
            s,
            pid: 0,
            key: [0; 4],
            statuses: Vec::new(),
            notifications: Vec::new(),
        };
        loop {
            let (tag, body) = read_msg(&mut r.s).unwrap();
            match tag {
                b'K' => {
                    r.pid = i32::from_be_bytes(body[..4].try_into().unwrap());
                    r.key = body[4..8].try_into().unwrap();
                }
                b'Z' => return r,
                _ => r.note(tag, &body),
            }
        }
    }

    fn note(&mut self, tag: u8, body: &[u8]) {
        match tag {
            b'S' => {
                let v = cstrs(body);
                self.statuses.push((v[0].clone(), v[1].clone()));
            }
            b'A' => {
                let pid = i32::from_be_bytes(body[..4].try_into().unwrap());
                let v = cstrs(&body[4..]);
                self.notifications.push((pid, v[0].clone(), v[1].clone()));
            }
            _ => {}
        }
    }

    /// The last value reported for parameter `name`.
    pub fn status(&self, name: &str) -> Option<&str> {
        self.statuses
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Runs one simple query: Ok(first column of each row), or
    /// Err(ErrorResponse fields). Err with an empty list when the
    /// connection closed.
    pub fn query(&mut self, sql: &str) -> Result<Vec<String>, Vec<(char, String)>> {
        let mut b = BytesMut::new();
        frontend::query(sql, &mut b).unwrap();
        if self.s.write_all(&b).is_err() {
            return Err(Vec::new());
        }
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            let Ok((tag, body)) = read_msg(&mut self.s) else {
                return Err(error.unwrap_or_default());
            };
            match tag {
                b'D' => {
                    let len = i32::from_be_bytes(body[2..6].try_into().unwrap());
                    rows.push(if len < 0 {
                        String::new()
                    } else {
                        String::from_utf8_lossy(&body[6..6 + len as usize]).into_owned()
                    });
                }
                b'E' => error = Some(error_fields(&body)),
                b'Z' => return error.map_or(Ok(rows), Err),
                _ => self.note(tag, &body),
            }
        }
    }
}
