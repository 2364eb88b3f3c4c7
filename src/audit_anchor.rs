//! Signed checkpoints of the audit chain. The hash chain alone proves
//! nothing against someone who can write the store: they can rewrite an
//! event and recompute every later hash and the head. A checkpoint signs the
//! chain head, and the hash of every event since the previous checkpoint,
//! with an Ed25519 key kept outside the store; a verifier holding the public
//! key then catches a rewrite anywhere up to the newest checkpoint and names
//! the event. Events after the newest checkpoint are only as strong as the
//! plain chain (docs/security.md).

mod verify;

pub use verify::{parse_public_key, verify_anchored, AnchoredVerification};

use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use std::path::{Path, PathBuf};

/// A checkpoint is written inside the append of every event whose seq is a
/// multiple of this, so a verifier may require one at least this often.
pub const CHECKPOINT_EVERY: i64 = 100;
/// Most event hashes one checkpoint lists (a chain that grew without a key,
/// then anchored once): older events are still covered through the head.
pub const MAX_SPAN: i64 = 1000;
/// How often a running daemon anchors events that arrived since the last
/// checkpoint, so a quiet chain's tail does not stay unsigned for long.
pub const PERIODIC: std::time::Duration = std::time::Duration::from_secs(300);
/// Default key file under data_dir.
pub const KEY_FILE: &str = "audit-signing.key";
/// Prefix of the printed public key, so an auditor sees what it is.
pub const KEY_PREFIX: &str = "ed25519:";
/// Separates this message from anything else the key could ever sign.
const DOMAIN: &[u8] = b"jitgate audit checkpoint v1";

#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    #[error("audit signing key {path}: {msg}")]
    Key { path: PathBuf, msg: String },
}

/// One signed checkpoint: `hashes` are the hashes of events
/// `from_seq + 1 ..= seq`, the last one being `head`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    pub seq: i64,
    pub from_seq: i64,
    pub at_ms: i64,
    pub instance: String,
    pub head: String,
    pub hashes: Vec<String>,
    /// The key that signed, as `ed25519:HEX`; informative only, verifiers
    /// use the key they hold.
    pub public_key: String,
    /// Hex of the 64-byte Ed25519 signature over [`message`].
    pub signature: String,
}

/// The signed bytes: length-prefixed fields as in the event hash, so no two
/// different checkpoints encode the same.
pub fn message(
    seq: i64,
    from_seq: i64,
    at_ms: i64,
    instance: &str,
    head: &str,
    hashes: &[String],
) -> Vec<u8> {
    let mut m = Vec::with_capacity(128 + hashes.len() * 72);
    let mut field = |b: &[u8]| {
        m.extend_from_slice(&(b.len() as u64).to_be_bytes());
        m.extend_from_slice(b);
    };
    field(DOMAIN);
    field(&seq.to_be_bytes());
    field(&from_seq.to_be_bytes());
    field(&at_ms.to_be_bytes());
    field(instance.as_bytes());
    field(head.as_bytes());
    field(&(hashes.len() as u64).to_be_bytes());
    for h in hashes {
        field(h.as_bytes());
    }
    m
}

/// The signing key and the instance name written into checkpoints.
pub struct Anchor {
    key: Ed25519KeyPair,
    public: String,
    instance: String,
}

impl std::fmt::Debug for Anchor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Anchor")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl Anchor {
    /// Loads `configured`, or `audit-signing.key` under data_dir, generating
    /// that one (mode 0600) on first start. A key others can read is refused:
    /// whoever holds it can forge checkpoints.
    pub fn load(
        data_dir: &Path,
        configured: Option<&Path>,
        instance: &str,
    ) -> Result<Anchor, AnchorError> {
        let path = configured
            .map(Path::to_path_buf)
            .unwrap_or_else(|| data_dir.join(KEY_FILE));
        let err = |msg: String| AnchorError::Key {
            path: path.clone(),
            msg,
        };
        if configured.is_none() && !path.exists() {
            generate(&path).map_err(|e| err(format!("cannot create it: {e}")))?;
            tracing::info!(path = %path.display(), "generated the audit signing key");
        }
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path)
            .map_err(|e| err(e.to_string()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(err(format!(
                "is accessible by group or others (mode {:o}); chmod 600 it",
                mode & 0o777
            )));
        }
        let bytes = std::fs::read(&path).map_err(|e| err(e.to_string()))?;
        let der = pkcs8_der(&bytes);
        // `maybe_unchecked` also takes PKCS#8 v1 (what `openssl genpkey`
        // writes); ring's own v2 files carry the public key and are checked.
        let key = Ed25519KeyPair::from_pkcs8(&der)
            .or_else(|_| Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der))
            .map_err(|e| err(format!("not an Ed25519 PKCS#8 key: {e}")))?;
        let public = format!("{KEY_PREFIX}{}", hex::encode(key.public_key().as_ref()));
        Ok(Anchor {
            key,
            public,
            instance: instance.to_string(),
        })
    }

    /// `ed25519:HEX`, as `jitgate audit --public-key` prints it.
    pub fn public_key(&self) -> &str {
        &self.public
    }

    pub fn sign(&self, seq: i64, from_seq: i64, at_ms: i64, hashes: Vec<String>) -> Checkpoint {
        let head = hashes.last().cloned().unwrap_or_default();
        let m = message(seq, from_seq, at_ms, &self.instance, &head, &hashes);
        Checkpoint {
            seq,
            from_seq,
            at_ms,
            instance: self.instance.clone(),
            head,
            hashes,
            public_key: self.public.clone(),
            signature: hex::encode(self.key.sign(&m).as_ref()),
        }
    }
}

/// PEM (`-----BEGIN PRIVATE KEY-----`) or raw DER.
fn pkcs8_der(bytes: &[u8]) -> Vec<u8> {
    let mut rd = bytes;
    let pem = rustls_pemfile::pkcs8_private_keys(&mut rd).next();
    match pem {
        Some(Ok(k)) => k.secret_pkcs8_der().to_vec(),
        _ => bytes.to_vec(),
    }
}

fn generate(path: &Path) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
        .map_err(|_| std::io::Error::other("the system random source failed"))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(doc.as_ref())?;
    f.sync_all()
}

#[cfg(test)]
mod tests;
