//! The client's own `application_name` in the ParameterStatus messages it
//! receives. The upstream runs with `application_name=jitgate:USER:SESSION`
//! (so pg_stat_activity and the audit tie the backend to the session), and
//! PostgreSQL reports that value at startup and again whenever it becomes
//! current (RESET, `SET ... TO DEFAULT`, a rolled-back SET). The client
//! should see the value it asked for, as with a direct connection: at
//! startup the proxy reports it itself, and in the relay this rewriter
//! replaces a ParameterStatus `application_name` carrying the tag with the
//! client's value. A value the client SETs itself passes unchanged.
//!
//! Every other byte passes through unaltered and, outside a ParameterStatus
//! message, uncopied: only a ParameterStatus (tag `S`, at most
//! [`MAX_HELD`] bytes) is held until complete. Fed the stream in any split,
//! it emits the same bytes; at a message boundary it holds nothing, so
//! bytes injected between two server messages stay in order.

use super::codec;

/// ParameterStatus messages longer than this pass through unexamined.
const MAX_HELD: usize = 4096;

pub struct StatusRewrite {
    upstream_value: Vec<u8>,
    client_value: String,
    header: [u8; 5],
    have: usize,
    remaining: u64,
    held: Option<Vec<u8>>,
    out: Vec<u8>,
}

impl StatusRewrite {
    /// `upstream_value`: what the upstream reported for application_name at
    /// startup (the tag, possibly truncated by the server);
    /// `client_value`: what the client asked for ("" when it did not).
    pub fn new(upstream_value: &str, client_value: &str) -> StatusRewrite {
        StatusRewrite {
            upstream_value: upstream_value.as_bytes().to_vec(),
            client_value: client_value.to_string(),
            header: [0; 5],
            have: 0,
            remaining: 0,
            held: None,
            out: Vec::new(),
        }
    }

    /// Bytes of the server stream in, bytes for the client out.
    pub fn feed<'a>(&'a mut self, data: &'a [u8]) -> &'a [u8] {
        let mut copying = self.held.is_some();
        self.out.clear();
        let mut i = 0;
        while i < data.len() {
            if self.have == 0 && self.remaining == 0 && data[i] == b'S' {
                if !copying {
                    self.out.extend_from_slice(&data[..i]);
                    copying = true;
                }
                self.held = Some(Vec::with_capacity(64));
            }
            let take = if self.have == 0 && self.remaining > 0 {
                let take = self.remaining.min((data.len() - i) as u64) as usize;
                self.remaining -= take as u64;
                take
            } else {
                let take = (5 - self.have).min(data.len() - i);
                self.header[self.have..self.have + take].copy_from_slice(&data[i..i + take]);
                self.have += take;
                if self.have == 5 {
                    self.have = 0;
                    let len = i32::from_be_bytes([
                        self.header[1],
                        self.header[2],
                        self.header[3],
                        self.header[4],
                    ]);
                    // A bad length is the frame tracker's to refuse.
                    self.remaining = (len.max(4) - 4) as u64;
                }
                take
            };
            let chunk = &data[i..i + take];
            i += take;
            match &mut self.held {
                Some(h) => {
                    h.extend_from_slice(chunk);
                    if h.len() > MAX_HELD {
                        self.out.extend_from_slice(h);
                        self.held = None;
                    }
                }
                None if copying => self.out.extend_from_slice(chunk),
                None => {}
            }
            if self.have == 0 && self.remaining == 0 {
                if let Some(h) = self.held.take() {
                    let m = self.rewrite(h);
                    self.out.extend_from_slice(&m);
                }
            }
        }
        if copying {
            &self.out
        } else {
            data
        }
    }

    fn rewrite(&self, message: Vec<u8>) -> Vec<u8> {
        let body = message.get(5..).unwrap_or_default();
        let Some((name, rest)) = codec::cstr(body) else {
            return message;
        };
        let value = rest.split(|&b| b == 0).next().unwrap_or_default();
        if name == "application_name" && value == self.upstream_value.as_slice() {
            codec::parameter_status(name, &self.client_value)
        } else {
            message
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> Vec<u8> {
        let mut v = codec::message(b'D', b"\x00\x01\x00\x00\x00\x01S");
        v.extend(codec::parameter_status(
            "application_name",
            "jitgate:bob:ses_1",
        ));
        v.extend(codec::parameter_status("TimeZone", "UTC"));
        v.extend(codec::parameter_status("application_name", "mine"));
        v.extend(codec::ready_for_query(b'I'));
        v
    }

    fn expected() -> Vec<u8> {
        let mut v = codec::message(b'D', b"\x00\x01\x00\x00\x00\x01S");
        v.extend(codec::parameter_status("application_name", "psql"));
        v.extend(codec::parameter_status("TimeZone", "UTC"));
        v.extend(codec::parameter_status("application_name", "mine"));
        v.extend(codec::ready_for_query(b'I'));
        v
    }

    #[test]
    fn the_tag_becomes_the_clients_value_in_any_split() {
        let input = stream();
        for a in 0..=input.len() {
            for b in a..=input.len() {
                let mut r = StatusRewrite::new("jitgate:bob:ses_1", "psql");
                let mut out = Vec::new();
                for part in [&input[..a], &input[a..b], &input[b..]] {
                    out.extend_from_slice(r.feed(part));
                }
                assert_eq!(out, expected(), "split at {a}, {b}");
            }
        }
    }

    #[test]
    fn other_messages_pass_uncopied() {
        let data = codec::message(b'D', &[7u8; 100]);
        let mut r = StatusRewrite::new("jitgate:bob:ses_1", "psql");
        let out = r.feed(&data);
        assert_eq!(out.as_ptr(), data.as_ptr());
    }
}
