//! jitgate's SSH user certificate authority: an ed25519 key (configured,
//! or generated under data_dir on first start) that signs engineers'
//! public keys as short-lived OpenSSH user certificates, and the checks
//! the SSH front end makes on a certificate presented to it.
//!
//! Invariants:
//! - A certificate names one jitgate user: its key id and its single
//!   principal are that user's name. A certificate with no principal would
//!   be valid for every name in OpenSSH's reading; none is issued, and one
//!   presented is refused.
//! - Only certificates signed by this CA's own key are accepted (the key
//!   itself is compared, not a fingerprint of it), of type user, inside
//!   their validity, with no critical options (jitgate issues none, so any
//!   one present was not issued here or asks for something not enforced).
//! - Issuance takes the caller's sign-in end as the certificate's end, and
//!   12 hours at most. A certificate obtained with an IdP sign-in carries
//!   the sign-in's id (not its token) in the [`SIGNIN_EXTENSION`]
//!   extension, and the SSH front end checks at each login that the
//!   sign-in is still live, so a logout ends the certificate too. One
//!   obtained with a static token carries a digest of that token's
//!   configured hash in [`TOKEN_EXTENSION`], and the front end checks at
//!   each login that the user's token is still that one: removing or
//!   replacing a leaked token ends the certificates it obtained. A
//!   certificate with neither (signed by hand with the CA key, or by a
//!   release before this check) is bound by its validity only.

use russh::keys::ssh_key::certificate::{Builder, CertType};
use russh::keys::ssh_key::public::KeyData;
use russh::keys::ssh_key::{EcdsaCurve, LineEnding};
use russh::keys::{Algorithm, Certificate, HashAlg, PrivateKey, PublicKey};
use std::path::Path;
use std::time::Duration;

/// The longest a certificate is valid, and the validity of one issued to a
/// caller whose sign-in has no end (a static token).
pub const MAX_VALIDITY: Duration = Duration::from_secs(12 * 3600);
/// How far in the past a certificate's validity starts: a client or proxy
/// whose clock is a little behind still accepts it.
pub const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);
/// Smallest RSA modulus accepted for a certificate's subject key, in bits.
pub const MIN_RSA_BITS: u32 = 2048;
/// The certificate extension (OpenSSH's vendor form `name@domain`) holding
/// the id of the sign-in that obtained the certificate.
pub const SIGNIN_EXTENSION: &str = "jitgate-signin@jitgate";
/// The certificate extension holding [`token_binding`] of the static
/// token that obtained the certificate.
pub const TOKEN_EXTENSION: &str = "jitgate-token@jitgate";
/// The file a generated CA key is kept in, under data_dir.
pub const GENERATED_FILE: &str = "ssh-user-ca-ed25519";

/// The standard permissions OpenSSH's `ssh-keygen -s` grants by default.
const EXTENSIONS: &[&str] = &[
    "permit-X11-forwarding",
    "permit-agent-forwarding",
    "permit-port-forwarding",
    "permit-pty",
    "permit-user-rc",
];

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("loading the SSH user CA key {path}: {why}")]
    Load { path: String, why: String },
    #[error("the SSH user CA key {path} is {algorithm}; it must be an ed25519 key")]
    NotEd25519 { path: String, algorithm: String },
    #[error("{0}")]
    BadKey(String),
    #[error("signing the certificate: {0}")]
    Sign(String),
}

/// The CA: its private key, and its public key for comparisons.
pub struct UserCa {
    key: PrivateKey,
    public: KeyData,
}

/// One certificate issued: the OpenSSH line, and what the audit records.
pub struct Issued {
    pub certificate: String,
    pub serial: u64,
    /// Unix seconds.
    pub valid_before: u64,
    pub fingerprint: String,
}

impl UserCa {
    /// Loads the configured key, or the one generated under `data_dir`
    /// (generating it, mode 0600, when absent).
    pub fn load(data_dir: &Path, configured: Option<&Path>) -> Result<UserCa, CaError> {
        let path = match configured {
            Some(p) => p.to_path_buf(),
            None => {
                let p = data_dir.join(GENERATED_FILE);
                if !p.exists() {
                    let k =
                        PrivateKey::random(&mut russh::keys::key::safe_rng(), Algorithm::Ed25519)
                            .map_err(|e| load_err(&p, e))?;
                    // Written with mode 0600.
                    k.write_openssh_file(&p, LineEnding::LF)
                        .map_err(|e| load_err(&p, e))?;
                    tracing::info!(path = %p.display(), "generated an ed25519 SSH user CA key");
                }
                p
            }
        };
        let key = russh::keys::load_secret_key(&path, None).map_err(|e| load_err(&path, e))?;
        if key.algorithm() != Algorithm::Ed25519 {
            return Err(CaError::NotEd25519 {
                path: path.display().to_string(),
                algorithm: key.algorithm().to_string(),
            });
        }
        Ok(UserCa::from_key(key))
    }

    pub fn from_key(key: PrivateKey) -> UserCa {
        let public = key.public_key().key_data().clone();
        UserCa { key, public }
    }

    /// `ssh-ed25519 AAAA...`: the line an sshd's `TrustedUserCAKeys` or a
    /// client's `@cert-authority` takes.
    pub fn public_line(&self) -> String {
        PublicKey::new(self.public.clone(), "")
            .to_openssh()
            .unwrap_or_default()
    }

    pub fn fingerprint(&self) -> String {
        PublicKey::new(self.public.clone(), "")
            .fingerprint(HashAlg::Sha256)
            .to_string()
    }

    /// Signs `subject` (an OpenSSH public key line) for `user`, valid from a
    /// little before `now` until `until` (Unix seconds), capped at
    /// [`MAX_VALIDITY`] from now; `bound`: what obtained it (the caller's
    /// IdP sign-in or static token), put in its extension.
    pub fn issue(
        &self,
        subject: &str,
        user: &str,
        now: u64,
        until: Option<u64>,
        bound: Option<&Binding>,
    ) -> Result<Issued, CaError> {
        let key = subject_key(subject)?;
        if key.key_data() == &self.public {
            return Err(CaError::BadKey(
                "the public key is the CA's own; send your own key".into(),
            ));
        }
        let cap = now.saturating_add(MAX_VALIDITY.as_secs());
        let valid_before = until.map_or(cap, |u| u.min(cap));
        if valid_before <= now {
            return Err(CaError::BadKey("the sign-in has ended".into()));
        }
        let valid_after = now.saturating_sub(CLOCK_SKEW.as_secs());
        let nonce: [u8; 16] = rand::random();
        let serial: u64 = rand::random();
        let sign_err = |e: russh::keys::ssh_key::Error| CaError::Sign(e.to_string());
        let mut b = Builder::new(
            nonce.to_vec(),
            key.key_data().clone(),
            valid_after,
            valid_before,
        )
        .map_err(sign_err)?;
        b.serial(serial).map_err(sign_err)?;
        b.cert_type(CertType::User).map_err(sign_err)?;
        b.key_id(user).map_err(sign_err)?;
        b.valid_principal(user).map_err(sign_err)?;
        for ext in EXTENSIONS {
            b.extension(*ext, "").map_err(sign_err)?;
        }
        match bound {
            Some(Binding::Signin(id)) => {
                if !signin_id_shaped(id) {
                    return Err(CaError::Sign(format!(
                        "sign-in id {:?} is not one jitgate makes",
                        crate::text::escape(id)
                    )));
                }
                b.extension(SIGNIN_EXTENSION, id.as_str())
                    .map_err(sign_err)?;
            }
            Some(Binding::Token(t)) => {
                b.extension(TOKEN_EXTENSION, t.as_str()).map_err(sign_err)?;
            }
            None => {}
        }
        b.comment(user).map_err(sign_err)?;
        let cert = b.sign(&self.key).map_err(sign_err)?;
        let certificate = cert.to_openssh().map_err(sign_err)?;
        Ok(Issued {
            certificate,
            serial,
            valid_before,
            fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
        })
    }

    /// The jitgate user a certificate presented at `now` (Unix seconds)
    /// names, or why it is refused. The signature by the certificate's own
    /// signature key is checked again here: only a comparison of that key
    /// with ours makes it this CA's.
    pub fn check(&self, cert: &Certificate, now: u64) -> Result<String, String> {
        if cert.signature_key() != &self.public {
            return Err("certificate not signed by jitgate's user CA".into());
        }
        if cert.verify_signature().is_err() {
            return Err("certificate signature invalid".into());
        }
        if cert.cert_type() != CertType::User {
            return Err("not a user certificate".into());
        }
        if now < cert.valid_after() {
            return Err("certificate not yet valid".into());
        }
        if now >= cert.valid_before() {
            return Err("certificate expired".into());
        }
        if let Some((name, _)) = cert.critical_options().iter().next() {
            return Err(format!(
                "certificate has critical option {:?}, which jitgate does not enforce",
                crate::text::escape(&name.chars().take(64).collect::<String>())
            ));
        }
        let user = cert.key_id();
        match cert.valid_principals() {
            [p] if p == user && crate::config::valid_name(user) => Ok(user.to_string()),
            _ => Err("certificate principal is not its user".into()),
        }
    }
}

/// What obtained a certificate, checked again at each login with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binding {
    /// The id of an IdP sign-in (`si_...`): live while the sign-in is.
    Signin(String),
    /// [`token_binding`] of a static token: good while the user's
    /// configured token is that one.
    Token(String),
}

/// A static token's binding: 128 bits of SHA-256 over its configured hash,
/// in hex. Not the hash itself: a certificate is shown to whoever it is
/// presented to, and the hash of a short token could be guessed from.
pub fn token_binding(token_sha256: &[u8; 32]) -> String {
    let mut input = b"jitgate ssh certificate token\0".to_vec();
    input.extend_from_slice(token_sha256);
    hex::encode(&crate::secrets::sha256(&input)[..16])
}

/// What a certificate (already `check`ed) is bound to: None when it has
/// neither extension, an error when a value is not one jitgate makes or
/// when it has both (never issued so: refuse).
pub fn binding_of(cert: &Certificate) -> Result<Option<Binding>, String> {
    let ext = cert.extensions();
    match (ext.get(SIGNIN_EXTENSION), ext.get(TOKEN_EXTENSION)) {
        (None, None) => Ok(None),
        (Some(id), None) if signin_id_shaped(id) => Ok(Some(Binding::Signin(id.clone()))),
        (None, Some(t)) if token_binding_shaped(t) => Ok(Some(Binding::Token(t.clone()))),
        (Some(_), Some(_)) => Err(format!(
            "certificate has both {SIGNIN_EXTENSION} and {TOKEN_EXTENSION}"
        )),
        (Some(_), None) => Err(format!("certificate has a malformed {SIGNIN_EXTENSION}")),
        (None, Some(_)) => Err(format!("certificate has a malformed {TOKEN_EXTENSION}")),
    }
}

/// 32 lowercase hex digits: what [`token_binding`] makes.
fn token_binding_shaped(t: &str) -> bool {
    t.len() == 32 && t.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `si_` and up to 61 more of [A-Za-z0-9_-]: what `identity::flow` makes.
fn signin_id_shaped(id: &str) -> bool {
    id.len() <= 64
        && id.strip_prefix("si_").is_some_and(|rest| {
            !rest.is_empty()
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
}

fn load_err(path: &Path, e: impl std::fmt::Display) -> CaError {
    CaError::Load {
        path: path.display().to_string(),
        why: e.to_string(),
    }
}

/// Parses an engineer's public key line and refuses what jitgate does not
/// sign: unparsable lines, certificates, keys of an unsupported type, and
/// RSA keys below [`MIN_RSA_BITS`].
fn subject_key(line: &str) -> Result<PublicKey, CaError> {
    let line = line.trim();
    if line.is_empty() || line.len() > 16 * 1024 || line.contains('\n') {
        return Err(CaError::BadKey(
            "public_key must be one OpenSSH public key line".into(),
        ));
    }
    let key = PublicKey::from_openssh(line).map_err(|_| {
        CaError::BadKey(
            "public_key is not an OpenSSH public key line (e.g. the contents of ~/.ssh/id_ed25519.pub)"
                .into(),
        )
    })?;
    match key.key_data() {
        KeyData::Ed25519(_) => {}
        KeyData::Ecdsa(e) => match e.curve() {
            EcdsaCurve::NistP256 | EcdsaCurve::NistP384 | EcdsaCurve::NistP521 => {}
        },
        KeyData::Rsa(r) => {
            let bits = r.key_size();
            if bits < MIN_RSA_BITS {
                return Err(CaError::BadKey(format!(
                    "RSA key of {bits} bits is too weak; use ed25519 or RSA of {MIN_RSA_BITS} bits or more"
                )));
            }
        }
        other => {
            return Err(CaError::BadKey(format!(
                "{} keys are not supported; use ed25519, ECDSA or RSA",
                other.algorithm()
            )))
        }
    }
    Ok(key)
}

#[cfg(test)]
mod tests;
