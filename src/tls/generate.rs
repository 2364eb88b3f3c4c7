//! Certificates jitgate makes for itself when none are configured: a proper
//! subject ("jitgate INSTANCE") and the names a client may dial, valid for
//! 397 days (the longest validity browsers and most TLS stacks accept), and
//! replaced at start when fewer than 30 days remain, so an instance that is
//! restarted now and then never serves an expired certificate. Configured
//! files are only read: when one is close to its end the daemon warns.

use super::TlsError;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Validity of a generated certificate.
pub const VALIDITY_DAYS: i64 = 397;
/// A generated certificate with less left is replaced at start; a configured
/// one makes the daemon warn.
pub const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

/// The end of the first certificate of a PEM file's validity.
pub fn not_after(cert_pem: &[u8]) -> Result<SystemTime, String> {
    use x509_cert::der::Decode;
    let der = rustls_pemfile::certs(&mut &cert_pem[..])
        .next()
        .ok_or("no certificate")?
        .map_err(|e| e.to_string())?;
    let cert = x509_cert::Certificate::from_der(der.as_ref()).map_err(|e| e.to_string())?;
    Ok(SystemTime::UNIX_EPOCH + cert.tbs_certificate.validity.not_after.to_unix_duration())
}

/// What is left of a validity ending at `end` (zero once past).
pub fn remaining(end: SystemTime) -> Duration {
    end.duration_since(SystemTime::now()).unwrap_or_default()
}

/// The names a generated certificate carries: loopback in every spelling,
/// this host's name, and the listener's address unless it is a wildcard
/// (a wildcard address is not something a client dials).
pub fn names(listen: Option<IpAddr>) -> Vec<String> {
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if let Some(h) = host_name() {
        names.push(h);
    }
    if let Some(ip) = listen.filter(|ip| !ip.is_unspecified()) {
        let ip = ip.to_string();
        if !names.contains(&ip) {
            names.push(ip);
        }
    }
    names
}

/// This host's name when it is a usable DNS name (anything else would make
/// certificate generation fail for a cosmetic reason).
fn host_name() -> Option<String> {
    let h = std::fs::read_to_string("/etc/hostname").ok()?;
    let h = h.trim().to_ascii_lowercase();
    let ok = !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    (ok && h != "localhost").then_some(h)
}

/// A self-signed certificate and its key, both PEM.
pub fn self_signed(instance: &str, names: Vec<String>) -> Result<(String, String), TlsError> {
    let gen = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let mut params = rcgen::CertificateParams::new(names).map_err(gen)?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, format!("jitgate {instance}"));
    params.distinguished_name = dn;
    let now = time::OffsetDateTime::now_utc();
    // An hour back: a client whose clock lags a little still accepts it.
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(VALIDITY_DAYS);
    let key = rcgen::KeyPair::generate().map_err(gen)?;
    let cert = params.self_signed(&key).map_err(gen)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Makes sure `cert`/`key` under data_dir hold a generated certificate with
/// more than RENEW_BEFORE left, writing a new pair (0600) when they are
/// missing, unreadable or near their end.
pub fn ensure(
    cert: &Path,
    key: &Path,
    instance: &str,
    listen: Option<IpAddr>,
) -> Result<(), TlsError> {
    let current = match (std::fs::read(cert), key.exists()) {
        (Ok(pem), true) => Some(not_after(&pem)),
        _ => None,
    };
    match current {
        Some(Ok(end)) if remaining(end) > RENEW_BEFORE => return Ok(()),
        Some(Ok(end)) => tracing::info!(
            cert = %cert.display(),
            days_left = remaining(end).as_secs() / 86400,
            "the generated TLS certificate is near its end; replacing it"
        ),
        Some(Err(e)) => tracing::warn!(
            cert = %cert.display(),
            error = %e,
            "the generated TLS certificate cannot be read; replacing it"
        ),
        None => {}
    }
    let (cert_pem, key_pem) = self_signed(instance, names(listen))?;
    super::write_private(key, key_pem.as_bytes())?;
    super::write_private(cert, cert_pem.as_bytes())?;
    tracing::info!(cert = %cert.display(), "generated a self-signed TLS certificate");
    Ok(())
}

/// Warns when a configured certificate ends within RENEW_BEFORE; the file
/// is the operator's, so it is never replaced.
pub fn warn_if_ending(path: &Path, cert_pem: &[u8]) {
    match not_after(cert_pem) {
        Ok(end) if remaining(end) <= RENEW_BEFORE => tracing::warn!(
            cert = %path.display(),
            days_left = remaining(end).as_secs() / 86400,
            "the configured TLS certificate expires soon (or has expired); replace it"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(
            cert = %path.display(),
            error = %e,
            "cannot read the configured TLS certificate's validity"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cover_loopback_and_a_dialable_listener_address_only() {
        let n = names(Some("10.1.2.3".parse().unwrap()));
        for want in ["localhost", "127.0.0.1", "::1", "10.1.2.3"] {
            assert!(n.iter().any(|x| x == want), "{want} missing from {n:?}");
        }
        let n = names(Some("0.0.0.0".parse().unwrap()));
        assert!(!n.iter().any(|x| x == "0.0.0.0"), "{n:?}");
        assert_eq!(n.iter().filter(|x| *x == "127.0.0.1").count(), 1);
    }

    #[test]
    fn a_generated_certificate_names_the_instance_and_lasts_397_days() {
        let (cert, _) = self_signed("eu-1", names(None)).unwrap();
        let days = remaining(not_after(cert.as_bytes()).unwrap()).as_secs() / 86400;
        assert!((396..=397).contains(&days), "{days}");
        use x509_cert::der::Decode;
        let der = rustls_pemfile::certs(&mut cert.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        let c = x509_cert::Certificate::from_der(der.as_ref()).unwrap();
        assert_eq!(c.tbs_certificate.subject.to_string(), "CN=jitgate eu-1");
    }
}
