//! Garbage on the SSH listener after authentication: a relay between a real
//! ssh client and the proxy injects random bytes into the encrypted stream
//! while a command runs. The proxy must drop that connection (its MAC check
//! fails), end the session, stop the command on the target, and go on
//! serving others.

use crate::common;

use common::daemon::DAVE;
use common::sshproxy::*;
use common::tunnel::wait_for;
use common::wait::*;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

/// A relay to `to` for one connection; returns its port and the writer to
/// the proxy, shared with the client-to-proxy copy so injected bytes land
/// between whole writes.
fn relay(to: u16) -> (u16, Arc<Mutex<Option<TcpStream>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let upw: Arc<Mutex<Option<TcpStream>>> = Arc::new(Mutex::new(None));
    let shared = upw.clone();
    std::thread::spawn(move || {
        let Ok((client, _)) = l.accept() else { return };
        let Ok(up) = TcpStream::connect(("127.0.0.1", to)) else {
            return;
        };
        *shared.lock().unwrap() = Some(up.try_clone().unwrap());
        let mut from_client = client.try_clone().unwrap();
        let w = shared.clone();
        std::thread::spawn(move || {
            let mut b = [0u8; 16384];
            while let Ok(n) = from_client.read(&mut b) {
                if n == 0 {
                    break;
                }
                let mut g = w.lock().unwrap();
                let Some(up) = g.as_mut() else { break };
                if up.write_all(&b[..n]).is_err() {
                    break;
                }
            }
            if let Some(up) = w.lock().unwrap().as_ref() {
                let _ = up.shutdown(Shutdown::Write);
            }
        });
        let mut from_up = up;
        let mut to_client = client;
        let _ = std::io::copy(&mut from_up, &mut to_client);
        let _ = to_client.shutdown(Shutdown::Both);
    });
    (port, upw)
}

#[test]
fn garbage_in_the_encrypted_stream_ends_the_session_and_nothing_else() {
    let Some(p) = SshProxy::start() else { return };
    p.grant("auto-host");
    let (port, inject) = relay(p.port);
    let remote = RemoteSleep::new();
    let mut ssh = p.ssh("auto-host", &["-tt", &remote.cmd]);
    // The same command line, through the relay.
    let args: Vec<String> = ssh
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let at = args.iter().position(|a| a == "-p").unwrap();
    let mut args = args;
    args[at + 1] = port.to_string();
    ssh = std::process::Command::new("ssh");
    ssh.args(&args);
    let child = remote.start(ssh, Stdio::piped());
    let sessions = || {
        p.d.get("/v1/sessions", Some(DAVE)).unwrap().json()["sessions"]
            .as_array()
            .map(|a| a.len())
            .unwrap_or(0)
    };
    assert_eq!(sessions(), 1);
    // 64 KiB of noise (xorshift) into the client-to-proxy stream.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let noise: Vec<u8> = (0..65536)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    {
        let mut g = inject.lock().unwrap();
        let up = g.as_mut().expect("relay connected");
        let _ = up.write_all(&noise);
    }
    let o = common::wait_output(child, HANG);
    assert_ne!(o.status.code(), Some(0), "{:?}", out(&o));
    wait_for("the session to end", || sessions() == 0);
    remote.wait_gone();
    let logs = p.d.logs();
    assert!(!logs.contains("panicked"), "{logs}");
    // Others are still served.
    let o = p.ssh("auto-host", &["echo alive"]).output_within(HANG);
    assert_eq!(out(&o).0, "alive\n", "{:?}", out(&o));
}
