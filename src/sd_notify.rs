//! The systemd readiness protocol (sd_notify(3)) without libsystemd: when
//! `$NOTIFY_SOCKET` is set (a `Type=notify` unit), state lines such as
//! `READY=1` go as one datagram to that unix socket. A path starting with
//! `/` is a filesystem socket, one starting with `@` an abstract one (Linux).
//! Without the variable, or on any error, nothing happens but a debug line:
//! readiness reporting must never stop the daemon.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Bounds a send to a receiver whose queue is full (systemd reads promptly;
/// this only caps a wedged one). The few notifications are not on a hot path.
const SEND_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("NOTIFY_SOCKET {0:?} is neither a path nor an abstract name")]
    Address(String),
    #[error("cannot notify {0:?}: {1}")]
    Io(String, std::io::Error),
}

/// Sends `state` (newline-separated `KEY=VALUE` lines) to `$NOTIFY_SOCKET`.
/// Returns whether a datagram was sent.
pub fn notify(state: &str) -> bool {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return false;
    };
    let target = target.to_string_lossy().into_owned();
    match send(&target, state) {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(error = %e, "sd_notify failed");
            false
        }
    }
}

fn address(target: &str) -> Result<SocketAddr, NotifyError> {
    let io = |e| NotifyError::Io(target.to_string(), e);
    if let Some(name) = target.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        SocketAddr::from_abstract_name(name.as_bytes()).map_err(io)
    } else if target.starts_with('/') {
        SocketAddr::from_pathname(target).map_err(io)
    } else {
        Err(NotifyError::Address(target.to_string()))
    }
}

fn send(target: &str, state: &str) -> Result<(), NotifyError> {
    let io = |e| NotifyError::Io(target.to_string(), e);
    let addr = address(target)?;
    let sock = UnixDatagram::unbound().map_err(io)?;
    sock.set_write_timeout(Some(SEND_TIMEOUT)).map_err(io)?;
    sock.send_to_addr(state.as_bytes(), &addr).map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_a_path_and_to_an_abstract_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let rx = UnixDatagram::bind(&path).unwrap();
        send(path.to_str().unwrap(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");

        let name = format!("jitgate-test-{}", std::process::id());
        let rx = UnixDatagram::bind_addr(&address(&format!("@{name}")).unwrap()).unwrap();
        send(&format!("@{name}"), "STOPPING=1").unwrap();
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
    }

    #[test]
    fn refuses_other_addresses() {
        assert!(matches!(
            address("vsock:2:1234"),
            Err(NotifyError::Address(_))
        ));
    }
}
