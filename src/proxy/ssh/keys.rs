//! SSH key material: the proxy's host key (configured, or an ed25519 key
//! generated under data_dir on first start), engineers' public keys from
//! `users.ssh_keys`, targets' pinned host keys, and the algorithms both
//! sides of the proxy negotiate.

use anyhow::Context;
use russh::keys::ssh_key::LineEnding;
use russh::keys::{Algorithm, HashAlg, PrivateKey, PublicKey};
use std::borrow::Cow;
use std::path::Path;

/// Loads the configured host key, or generates `<data_dir>/ssh-host-ed25519`.
pub fn host_key(data_dir: &Path, configured: Option<&Path>) -> anyhow::Result<PrivateKey> {
    let path = match configured {
        Some(p) => p.to_path_buf(),
        None => {
            let p = data_dir.join("ssh-host-ed25519");
            if !p.exists() {
                let k = PrivateKey::random(&mut russh::keys::key::safe_rng(), Algorithm::Ed25519)
                    .context("generating the SSH host key")?;
                // Written with mode 0600.
                k.write_openssh_file(&p, LineEnding::LF)
                    .with_context(|| format!("writing {}", p.display()))?;
                tracing::info!(path = %p.display(), "generated an ed25519 SSH host key");
            }
            p
        }
    };
    russh::keys::load_secret_key(&path, None)
        .with_context(|| format!("loading the SSH host key {}", path.display()))
}

/// `ssh-ed25519 AAAA... comment` → key (the comment is ignored).
pub fn public_key(line: &str) -> Option<PublicKey> {
    PublicKey::from_openssh(line.trim()).ok()
}

/// Same key, ignoring comments (`PublicKey ==` compares comments too).
pub fn same_key(a: &PublicKey, b: &PublicKey) -> bool {
    a.key_data() == b.key_data()
}

/// `ssh-ed25519 AAAA...` without a comment: the form of a known_hosts entry
/// after the host names, and of a target's pinned `host_key`.
pub fn openssh_line(k: &PublicKey) -> String {
    PublicKey::new(k.key_data().clone(), "")
        .to_openssh()
        .unwrap_or_default()
}

pub fn fingerprint(k: &PublicKey) -> String {
    k.fingerprint(HashAlg::Sha256).to_string()
}

/// The user whose `ssh_keys` include `key`.
pub fn user_for_key(cfg: &crate::config::Config, key: &PublicKey) -> Option<String> {
    cfg.users.values().find_map(|u| {
        u.ssh_keys
            .iter()
            .filter_map(|l| public_key(l))
            .any(|k| same_key(&k, key))
            .then(|| u.name.clone())
    })
}

/// Modern algorithms only. The extension pseudo-algorithms must be listed
/// or strict key exchange (the Terrapin fix) and server-sig-algs are lost.
pub fn modern_algorithms(server_side: bool) -> russh::Preferred {
    use russh::{cipher, kex};
    let kexes: &'static [kex::Name] = if server_side {
        &[
            kex::MLKEM768X25519_SHA256,
            kex::CURVE25519,
            kex::CURVE25519_PRE_RFC_8731,
            kex::EXTENSION_SUPPORT_AS_SERVER,
            kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER,
        ]
    } else {
        &[
            kex::MLKEM768X25519_SHA256,
            kex::CURVE25519,
            kex::CURVE25519_PRE_RFC_8731,
            kex::EXTENSION_SUPPORT_AS_CLIENT,
            kex::EXTENSION_OPENSSH_STRICT_KEX_AS_CLIENT,
        ]
    };
    russh::Preferred {
        kex: Cow::Borrowed(kexes),
        cipher: Cow::Borrowed(&[
            cipher::CHACHA20_POLY1305,
            cipher::AES_256_GCM,
            cipher::AES_128_GCM,
        ]),
        ..Default::default()
    }
}
