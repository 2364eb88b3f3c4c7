//! Which direct-tcpip opens a terminating connection (`TARGET@proxy`)
//! relays: only to the destinations the target's `forwarding` list names,
//! compared as written there, nothing resolved. The target's sshd then
//! opens the connection, as it would without the proxy. (The end of a
//! grant covers forwarded channels like any other: see `channels`.)

/// The destination of a direct-tcpip open as written in `forwarding`: IPv6
/// literals in brackets.
pub fn destination(host: &str, port: u32) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Whether `forwarding` names `host:port` (host names compare without
/// case, as DNS does). Nothing is resolved: the list names exactly what the
/// target's sshd will be asked to connect to.
pub fn allowed(forwarding: &[String], host: &str, port: u32) -> bool {
    let dest = destination(host, port);
    forwarding.iter().any(|a| a.eq_ignore_ascii_case(&dest))
}
