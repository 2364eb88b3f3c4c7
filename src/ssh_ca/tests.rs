use super::*;

fn ca() -> UserCa {
    UserCa::from_key(
        PrivateKey::random(&mut russh::keys::key::safe_rng(), Algorithm::Ed25519).unwrap(),
    )
}

fn subject() -> PublicKey {
    PrivateKey::random(&mut russh::keys::key::safe_rng(), Algorithm::Ed25519)
        .unwrap()
        .public_key()
        .clone()
}

const NOW: u64 = 1_800_000_000;

#[test]
fn an_issued_certificate_names_its_user_and_passes_the_check() {
    let ca = ca();
    let key = subject();
    let issued = ca
        .issue(&key.to_openssh().unwrap(), "alice", NOW, None, None)
        .unwrap();
    let cert = Certificate::from_openssh(&issued.certificate).unwrap();
    assert_eq!(cert.key_id(), "alice");
    assert_eq!(cert.valid_principals(), ["alice".to_string()]);
    assert_eq!(cert.cert_type(), CertType::User);
    assert_eq!(cert.public_key(), key.key_data());
    assert_eq!(cert.valid_before(), NOW + MAX_VALIDITY.as_secs());
    assert!(cert.valid_after() < NOW);
    assert!(cert.critical_options().is_empty());
    assert!(cert.extensions().contains_key("permit-pty"));
    assert_eq!(cert.serial(), issued.serial);
    assert_eq!(ca.check(&cert, NOW), Ok("alice".to_string()));
}

#[test]
fn validity_ends_with_the_sign_in_and_never_past_twelve_hours() {
    let ca = ca();
    let line = subject().to_openssh().unwrap();
    let short = ca
        .issue(&line, "alice", NOW, Some(NOW + 600), None)
        .unwrap();
    assert_eq!(short.valid_before, NOW + 600);
    let long = ca
        .issue(&line, "alice", NOW, Some(NOW + 86_400), None)
        .unwrap();
    assert_eq!(long.valid_before, NOW + MAX_VALIDITY.as_secs());
    assert!(ca.issue(&line, "alice", NOW, Some(NOW), None).is_err());
}

#[test]
fn the_check_refuses_expired_foreign_and_misnamed_certificates() {
    let ca = ca();
    let line = subject().to_openssh().unwrap();
    let issued = ca.issue(&line, "alice", NOW, Some(NOW + 60), None).unwrap();
    let cert = Certificate::from_openssh(&issued.certificate).unwrap();
    assert_eq!(ca.check(&cert, NOW + 60), Err("certificate expired".into()));
    assert!(ca.check(&cert, NOW - 3600).is_err(), "not yet valid");
    let other = self::ca();
    assert_eq!(
        other.check(&cert, NOW),
        Err("certificate not signed by jitgate's user CA".into())
    );

    // Signed by this CA, but naming someone else as principal.
    let build = |principal: Option<&str>, critical: bool, kind: CertType| {
        let mut b = Builder::new(
            vec![0; 16],
            subject().key_data().clone(),
            NOW - 10,
            NOW + 10,
        )
        .unwrap();
        b.key_id("alice").unwrap();
        b.cert_type(kind).unwrap();
        match principal {
            Some(p) => b.valid_principal(p).unwrap(),
            None => b.all_principals_valid().unwrap(),
        };
        if critical {
            b.critical_option("force-command", "true").unwrap();
        }
        b.sign(&ca.key).unwrap()
    };
    assert!(ca
        .check(&build(Some("bob"), false, CertType::User), NOW)
        .is_err());
    assert!(ca.check(&build(None, false, CertType::User), NOW).is_err());
    assert!(ca
        .check(&build(Some("alice"), true, CertType::User), NOW)
        .is_err());
    assert!(ca
        .check(&build(Some("alice"), false, CertType::Host), NOW)
        .is_err());
    assert!(ca
        .check(&build(Some("alice"), false, CertType::User), NOW)
        .is_ok());
}

#[test]
fn issuance_refuses_what_is_not_a_usable_public_key() {
    let ca = ca();
    for bad in [
        "",
        "not a key",
        "ssh-ed25519 AAAA",
        "ssh-ed25519 AAAA\nssh-ed25519 AAAA",
    ] {
        assert!(
            matches!(
                ca.issue(bad, "alice", NOW, None, None),
                Err(CaError::BadKey(_))
            ),
            "{bad:?}"
        );
    }
    let issued = ca
        .issue(&subject().to_openssh().unwrap(), "alice", NOW, None, None)
        .unwrap();
    assert!(
        ca.issue(&issued.certificate, "alice", NOW, None, None)
            .is_err(),
        "a certificate is not a key"
    );
    assert!(
        ca.issue(&ca.public_line(), "alice", NOW, None, None)
            .is_err(),
        "the CA's own key"
    );
}

#[test]
fn a_generated_ca_key_is_kept_private_and_reloaded() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let first = UserCa::load(dir.path(), None).unwrap();
    let mode = std::fs::metadata(dir.path().join(GENERATED_FILE))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let again = UserCa::load(dir.path(), None).unwrap();
    assert_eq!(first.public_line(), again.public_line());
}

#[test]
fn a_configured_ca_key_must_be_ed25519() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca");
    let key = PrivateKey::random(
        &mut russh::keys::key::safe_rng(),
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP256,
        },
    )
    .unwrap();
    key.write_openssh_file(&path, LineEnding::LF).unwrap();
    assert!(matches!(
        UserCa::load(dir.path(), Some(&path)),
        Err(CaError::NotEd25519 { .. })
    ));
    assert!(matches!(
        UserCa::load(dir.path(), Some(&dir.path().join("missing"))),
        Err(CaError::Load { .. })
    ));
}

#[test]
fn a_certificate_carries_what_obtained_it() {
    let ca = ca();
    let line = subject().to_openssh().unwrap();
    let signin = Binding::Signin("si_AbC-d_9".into());
    let by_idp = ca
        .issue(&line, "alice", NOW, Some(NOW + 600), Some(&signin))
        .unwrap();
    let cert = Certificate::from_openssh(&by_idp.certificate).unwrap();
    assert_eq!(ca.check(&cert, NOW), Ok("alice".to_string()));
    assert_eq!(binding_of(&cert), Ok(Some(signin)));
    let token = Binding::Token(token_binding(&[7; 32]));
    let by_token = ca.issue(&line, "alice", NOW, None, Some(&token)).unwrap();
    let cert = Certificate::from_openssh(&by_token.certificate).unwrap();
    assert_eq!(binding_of(&cert), Ok(Some(token)));
    let bare = ca.issue(&line, "alice", NOW, None, None).unwrap();
    let cert = Certificate::from_openssh(&bare.certificate).unwrap();
    assert_eq!(binding_of(&cert), Ok(None));
    // Never issued with a value that is not a sign-in id.
    for bad in ["", "si_", "token", "si_a b", "si_\n"] {
        assert!(
            matches!(
                ca.issue(
                    &line,
                    "alice",
                    NOW,
                    None,
                    Some(&Binding::Signin(bad.into()))
                ),
                Err(CaError::Sign(_))
            ),
            "{bad:?}"
        );
    }
}

/// Two tokens' bindings differ, one token's is stable, and none shows
/// the configured hash.
#[test]
fn a_token_binding_is_a_stable_digest_of_the_token_hash() {
    let (a, b) = (token_binding(&[1; 32]), token_binding(&[2; 32]));
    assert_ne!(a, b);
    assert_eq!(a, token_binding(&[1; 32]));
    assert_eq!(a.len(), 32);
    assert!(!hex::encode([1u8; 32]).contains(&a));
}

#[test]
fn a_malformed_signin_extension_is_refused() {
    let ca = ca();
    let key = subject();
    let mut b = Builder::new(vec![0u8; 16], key.key_data().clone(), NOW - 60, NOW + 600).unwrap();
    b.cert_type(CertType::User).unwrap();
    b.key_id("alice").unwrap();
    b.valid_principal("alice").unwrap();
    b.extension(SIGNIN_EXTENSION, "not an id").unwrap();
    let cert = b.sign(&ca.key).unwrap();
    assert_eq!(ca.check(&cert, NOW), Ok("alice".to_string()));
    assert!(binding_of(&cert).is_err());
}

#[test]
fn a_malformed_or_doubled_binding_is_refused() {
    let ca = ca();
    let key = subject();
    let cert_with = |exts: &[(&str, &str)]| {
        let mut b =
            Builder::new(vec![0u8; 16], key.key_data().clone(), NOW - 60, NOW + 600).unwrap();
        b.cert_type(CertType::User).unwrap();
        b.key_id("alice").unwrap();
        b.valid_principal("alice").unwrap();
        for (k, v) in exts {
            b.extension(*k, *v).unwrap();
        }
        b.sign(&ca.key).unwrap()
    };
    let good = token_binding(&[3; 32]);
    assert!(binding_of(&cert_with(&[(TOKEN_EXTENSION, "ABC")])).is_err());
    assert!(binding_of(&cert_with(&[(TOKEN_EXTENSION, &good.to_uppercase())])).is_err());
    assert!(binding_of(&cert_with(&[
        (TOKEN_EXTENSION, &good),
        (SIGNIN_EXTENSION, "si_x")
    ]))
    .is_err());
    assert_eq!(
        binding_of(&cert_with(&[(TOKEN_EXTENSION, &good)])),
        Ok(Some(Binding::Token(good)))
    );
}
