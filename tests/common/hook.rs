//! A webhook receiver for tests that only need to see what was POSTed: a
//! real HTTP/1.1 server on 127.0.0.1 that answers 200 and keeps each
//! request's headers and body. (tests/control/notify.rs has the receiver
//! that can fail, hang and be down.)

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Hit {
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Hit {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("webhook body is JSON")
    }
}

pub struct Hook {
    pub port: u16,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Hook {
    pub fn start() -> Hook {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind hook");
        let port = l.local_addr().expect("hook addr").port();
        let hits: Arc<Mutex<Vec<Hit>>> = Default::default();
        let keep = hits.clone();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let keep = keep.clone();
                std::thread::spawn(move || {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                    let mut r = BufReader::new(&s);
                    let mut line = String::new();
                    if r.read_line(&mut line).is_err() {
                        return;
                    }
                    let mut headers = HashMap::new();
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).is_err() || h.trim().is_empty() {
                            break;
                        }
                        if let Some((k, v)) = h.trim().split_once(':') {
                            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                        }
                    }
                    let len: usize = headers
                        .get("content-length")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    let mut body = vec![0; len];
                    if r.read_exact(&mut body).is_err() {
                        return;
                    }
                    keep.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(Hit { headers, body });
                    let _ = (&s).write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    );
                });
            }
        });
        Hook { port, hits }
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits (bounded) for a delivery whose body satisfies `pred`. The
    /// bound only catches a delivery that never comes (a loaded machine
    /// delays the daemon's delivery task and this server's thread).
    pub fn wait_for(&self, what: &str, pred: impl Fn(&Hit) -> bool) -> Hit {
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(h) = self.hits().into_iter().find(|h| pred(h)) {
                return h;
            }
            assert!(
                Instant::now() < until,
                "no {what} delivered; got: {:?}",
                self.hits()
                    .iter()
                    .map(|h| String::from_utf8_lossy(&h.body).to_string())
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (bounded) for a jitgate-format event named `event`.
    pub fn wait_event(&self, event: &str) -> serde_json::Value {
        self.wait_for(event, |h| {
            serde_json::from_slice::<serde_json::Value>(&h.body).is_ok_and(|v| v["event"] == event)
        })
        .json()
    }
}
