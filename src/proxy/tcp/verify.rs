//! How `jitgate connect` trusts the proxy: a CA file, a pinned certificate
//! fingerprint, or the system roots. Never "no verification".

use crate::tls::client::{verified_config, CertificateCheck};

pub fn client_config(
    ca: Option<&std::path::Path>,
    fingerprint: Option<&str>,
) -> anyhow::Result<rustls::ClientConfig> {
    if let Some(fp) = fingerprint {
        let fp = fp.trim();
        let hexpart = fp.strip_prefix("sha256:").unwrap_or(fp);
        if hexpart.len() != 64 || hex::decode(hexpart).is_err() {
            anyhow::bail!(
                "--fingerprint must look like sha256:<64 hex digits> (see `jitgate whoami`)"
            );
        }
        return CertificateCheck::pinned(format!("sha256:{hexpart}")).config();
    }
    verified_config(ca)
}
