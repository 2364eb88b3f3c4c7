//! A user only the IdP knows (no `[[users]]` entry) uses a grant that an
//! IdP-only group gave them: through the TLS tunnel with `jitgate connect`,
//! and their live session ends when they are locked.

use crate::common::daemon::DAVE;
use crate::common::free_port;
use crate::common::tunnel::{echo, echo_server, wait_for, Tunnel, Upstreams};

#[test]
fn a_user_only_the_idp_knows_connects_with_a_grant_from_an_idp_group() {
    let users = r#"{"zoe": {"preferred_username": "zoe", "groups": ["idp-only-sre"]}}"#;
    let up = Upstreams {
        echo: echo_server(),
        count: free_port(),
        closing: free_port(),
        refused: free_port(),
    };
    let port = free_port();
    let extra = format!(
        "\n[listeners.tcp]\nlisten = \"127.0.0.1:{port}\"\n\n[[targets]]\nname = \"sre-echo\"\nkind = \"tcp\"\naddress = \"127.0.0.1:{}\"\n",
        up.echo
    );
    let Some((d, idp)) = crate::start_with(&extra, "", &[("IDP_USERS", users)]) else {
        return;
    };
    let zoe = crate::sign_in(&d, &idp, "zoe");
    let fingerprint = d.get("/v1/whoami", Some(&zoe)).unwrap().json()["tcp_tls_fingerprint"]
        .as_str()
        .expect("fingerprint")
        .to_string();
    let t = Tunnel {
        d,
        port,
        up,
        fingerprint,
    };
    let (_gid, secret) = t.grant(&zoe, "sre-echo", "5m");
    let c = t.connect("sre-echo", &secret);
    let mut s = c.open();
    echo(&mut s, b"hello from zoe");

    // A lock of a user only the IdP knows ends their session too.
    let r =
        t.d.post("/v1/users/zoe/lock", Some(DAVE), r#"{"reason": "left"}"#)
            .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.json()["sessions_terminated"].as_u64() >= Some(1),
        "{}",
        r.body
    );
    wait_for("zoe's session to end", || t.live_sessions() == 0);
    assert_eq!(t.d.get("/v1/whoami", Some(&zoe)).unwrap().status, 401);
}
