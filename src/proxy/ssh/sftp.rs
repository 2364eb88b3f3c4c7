//! sftp file operations read off a relayed subsystem channel, for the
//! recording's markers: a file opened and closed ("sftp read PATH: N
//! bytes", "sftp write PATH: N bytes"), removed, renamed, a directory made
//! or removed. Only the first `HEAD` bytes of each packet are kept (the
//! fields read here come first; file data is counted, never kept), and the
//! maps are bounded, so a hostile client costs little. Anything that does
//! not parse is ignored: this only labels a recording, it never affects
//! the relay.

use std::collections::HashMap;

const HEAD: usize = 4096 + 64;
const MAP_CAP: usize = 1024;
/// Longest path shown in a marker, in characters.
const PATH_CHARS: usize = 512;

const OPEN: u8 = 3;
const CLOSE: u8 = 4;
const READ: u8 = 5;
const WRITE: u8 = 6;
const REMOVE: u8 = 13;
const MKDIR: u8 = 14;
const RMDIR: u8 = 15;
const RENAME: u8 = 18;
const HANDLE: u8 = 102;
const DATA: u8 = 103;

const FXF_WRITE: u32 = 2;

#[derive(Default)]
struct Framer {
    len: [u8; 4],
    have: usize,
    remaining: usize,
    head: Vec<u8>,
}

impl Framer {
    /// Each complete packet's first bytes and full length.
    fn feed(&mut self, mut data: &[u8], mut on: impl FnMut(&[u8], usize)) {
        while !data.is_empty() {
            if self.have < 4 {
                let take = (4 - self.have).min(data.len());
                self.len[self.have..self.have + take].copy_from_slice(&data[..take]);
                self.have += take;
                data = &data[take..];
                if self.have < 4 {
                    return;
                }
                self.remaining = u32::from_be_bytes(self.len) as usize;
                self.head.clear();
            }
            let take = self.remaining.min(data.len());
            let room = HEAD.saturating_sub(self.head.len()).min(take);
            self.head.extend_from_slice(&data[..room]);
            self.remaining -= take;
            data = &data[take..];
            if self.remaining == 0 {
                on(&self.head, u32::from_be_bytes(self.len) as usize);
                self.have = 0;
            }
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u32(&mut self) -> Option<u32> {
        let b = self.0.get(..4)?;
        self.0 = &self.0[4..];
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn skip(&mut self, n: usize) -> Option<()> {
        self.0 = self.0.get(n..)?;
        Some(())
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        let b = self.0.get(..n)?;
        self.0 = &self.0[n..];
        Some(b)
    }
    fn text(&mut self) -> Option<String> {
        let s = String::from_utf8_lossy(self.bytes()?);
        Some(s.chars().take(PATH_CHARS).collect())
    }
}

struct Open {
    path: String,
    write: bool,
    bytes: u64,
}

#[derive(Default)]
pub struct SftpTap {
    up: Framer,
    down: Framer,
    /// OPEN requests waiting for their HANDLE, by request id.
    opening: HashMap<u32, (String, bool)>,
    /// Open files by handle.
    files: HashMap<Vec<u8>, Open>,
    /// READ requests waiting for their DATA, by request id.
    reads: HashMap<u32, Vec<u8>>,
}

fn bounded_insert<K: std::hash::Hash + Eq, V>(m: &mut HashMap<K, V>, k: K, v: V) {
    if m.len() < MAP_CAP {
        m.insert(k, v);
    }
}

impl SftpTap {
    /// The engineer's bytes: markers for operations that need no answer.
    pub fn request(&mut self, data: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        let mut up = std::mem::take(&mut self.up);
        up.feed(data, |p, len| {
            if let Some(m) = self.on_request(p, len) {
                out.push(m);
            }
        });
        self.up = up;
        out
    }

    /// The target's bytes: open files get their handle, reads their size.
    pub fn response(&mut self, data: &[u8]) -> Vec<String> {
        let mut down = std::mem::take(&mut self.down);
        down.feed(data, |p, len| {
            self.on_response(p, len);
        });
        self.down = down;
        Vec::new()
    }

    fn on_request(&mut self, p: &[u8], len: usize) -> Option<String> {
        let mut r = Reader(p);
        let kind = r.u8()?;
        let id = r.u32()?;
        match kind {
            OPEN => {
                let path = r.text()?;
                let flags = r.u32()?;
                bounded_insert(&mut self.opening, id, (path, flags & FXF_WRITE != 0));
                None
            }
            WRITE => {
                let h = r.bytes()?.to_vec();
                r.skip(8)?;
                let n = r.u32()? as u64;
                // The length field is trusted only up to what the packet holds.
                let n = n.min(len as u64);
                if let Some(f) = self.files.get_mut(&h) {
                    f.bytes += n;
                }
                None
            }
            READ => {
                let h = r.bytes()?.to_vec();
                bounded_insert(&mut self.reads, id, h);
                None
            }
            CLOSE => {
                let h = r.bytes()?;
                let f = self.files.remove(h)?;
                let what = if f.write { "write" } else { "read" };
                Some(format!("sftp {what} {}: {} bytes", f.path, f.bytes))
            }
            REMOVE => Some(format!("sftp remove {}", r.text()?)),
            MKDIR => Some(format!("sftp mkdir {}", r.text()?)),
            RMDIR => Some(format!("sftp rmdir {}", r.text()?)),
            RENAME => {
                let from = r.text()?;
                let to = r.text()?;
                Some(format!("sftp rename {from} -> {to}"))
            }
            _ => None,
        }
    }

    fn on_response(&mut self, p: &[u8], len: usize) -> Option<()> {
        let mut r = Reader(p);
        let kind = r.u8()?;
        let id = r.u32()?;
        match kind {
            HANDLE => {
                let (path, write) = self.opening.remove(&id)?;
                let h = r.bytes()?.to_vec();
                let open = Open {
                    path,
                    write,
                    bytes: 0,
                };
                bounded_insert(&mut self.files, h, open);
            }
            DATA => {
                let h = self.reads.remove(&id)?;
                let n = (r.u32()? as u64).min(len as u64);
                if let Some(f) = self.files.get_mut(&h) {
                    f.bytes += n;
                }
            }
            _ => {
                self.opening.remove(&id);
                self.reads.remove(&id);
            }
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(kind: u8, id: u32, body: &[u8]) -> Vec<u8> {
        let mut p = vec![kind];
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(body);
        let mut out = (p.len() as u32).to_be_bytes().to_vec();
        out.extend(p);
        out
    }

    fn s(b: &[u8]) -> Vec<u8> {
        let mut out = (b.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(b);
        out
    }

    #[test]
    fn an_upload_is_one_marker_with_its_size() {
        let mut t = SftpTap::default();
        let open = packet(
            OPEN,
            1,
            &[s(b"/tmp/f"), 0x1au32.to_be_bytes().to_vec(), vec![0; 4]].concat(),
        );
        assert!(t.request(&open).is_empty());
        t.response(&packet(HANDLE, 1, &s(b"h1")));
        let write = packet(WRITE, 2, &[s(b"h1"), vec![0; 8], s(&[7u8; 100])].concat());
        // Split mid-packet, as the relay may.
        assert!(t.request(&write[..50]).is_empty());
        assert!(t.request(&write[50..]).is_empty());
        let close = packet(CLOSE, 3, &s(b"h1"));
        assert_eq!(t.request(&close), vec!["sftp write /tmp/f: 100 bytes"]);
    }
}
