//! A user only the IdP knows (no `[[users]]` entry) uses a grant that an
//! IdP-only group gave them: through the TLS tunnel with `jitgate connect`,
//! and their live session ends when they are locked.

use crate::common::daemon::DAVE;
use crate::common::free_port;
use crate::common::tunnel::{echo, echo_server, wait_for, Tunnel, Upstreams};

/// A daemon with the tunnel listener and `sre-echo`, `gated-echo` (an
/// echo server) beside the identity binary's base config, signed in
/// through an IdP with `users`. Policy `gated`: requested by the IdP group
/// idp-only-sre, approved by the IdP group idp-leads.
fn tunnel(users: &str) -> Option<(Tunnel, crate::common::idp::Idp)> {
    let up = Upstreams {
        echo: echo_server(),
        count: free_port(),
        closing: free_port(),
        refused: free_port(),
    };
    let port = free_port();
    let extra = format!(
        r#"
[listeners.tcp]
listen = "127.0.0.1:{port}"

[[targets]]
name = "sre-echo"
kind = "tcp"
address = "127.0.0.1:{echo}"

[[targets]]
name = "gated-echo"
kind = "tcp"
address = "127.0.0.1:{echo}"

[[policies]]
name = "gated"
requesters = ["group:idp-only-sre"]
targets = ["gated-*"]
approvers = ["group:idp-leads"]
approvals_required = 1
max_duration = "10m"
"#,
        echo = up.echo
    );
    let (d, idp) = crate::start_with(&extra, "", &[("IDP_USERS", users)])?;
    let fingerprint = d.get("/v1/whoami", Some(DAVE)).unwrap().json()["tcp_tls_fingerprint"]
        .as_str()
        .expect("fingerprint")
        .to_string();
    Some((
        Tunnel {
            d,
            port,
            up,
            fingerprint,
        },
        idp,
    ))
}

#[test]
fn a_user_only_the_idp_knows_connects_with_a_grant_from_an_idp_group() {
    let users = r#"{"zoe": {"preferred_username": "zoe", "groups": ["idp-only-sre"]}}"#;
    let Some((t, idp)) = tunnel(users) else {
        return;
    };
    let zoe = crate::sign_in(&t.d, &idp, "zoe");
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

#[test]
fn an_idp_group_of_approvers_sees_approves_and_oversees() {
    let users = r#"{"zoe": {"preferred_username": "zoe", "groups": ["idp-only-sre"]},
                    "quinn": {"preferred_username": "quinn", "groups": ["idp-leads"]}}"#;
    let Some((t, idp)) = tunnel(users) else {
        return;
    };
    let zoe = crate::sign_in(&t.d, &idp, "zoe");
    let quinn = crate::sign_in(&t.d, &idp, "quinn");
    let w = t.d.get("/v1/whoami", Some(&quinn)).unwrap().json();
    assert_eq!(w["approver_of"], serde_json::json!(["gated"]), "{w}");
    // zoe may request gated-* (GET /v1/targets lists it), quinn may not.
    let names = |token: &str| {
        t.d.get("/v1/targets", Some(token)).unwrap().json()["targets"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|x| x["name"].as_str().map(str::to_string))
            .collect::<Vec<_>>()
    };
    assert!(names(&zoe).contains(&"gated-echo".to_string()));
    assert!(!names(&quinn).contains(&"gated-echo".to_string()));

    let r = t.d.create_request(&zoe, "gated-echo", "5m");
    assert_eq!(r["state"], "pending", "{r}");
    let rid = r["id"].as_str().expect("id").to_string();
    // quinn sees it (visibility) and approves it (approval).
    let listed = t.d.get("/v1/requests?state=pending", Some(&quinn)).unwrap();
    assert!(listed.body.contains(&rid), "{}", listed.body);
    let ok =
        t.d.post(&format!("/v1/requests/{rid}/approve"), Some(&quinn), "{}")
            .unwrap();
    assert_eq!(ok.status, 200, "{}", ok.body);
    let gid = ok.json()["grant"]["id"]
        .as_str()
        .expect("grant")
        .to_string();
    let s =
        t.d.post(&format!("/v1/grants/{gid}/secret"), Some(&zoe), "")
            .unwrap();
    assert_eq!(s.status, 200, "{}", s.body);
    let secret = s.json()["secret"].as_str().unwrap().to_string();
    let c = t.connect("gated-echo", &secret);
    let mut sock = c.open();
    echo(&mut sock, b"approved by an IdP group");
    // quinn oversees the session; bob (no approver) does not see it.
    let seen = |token: &str| t.d.get("/v1/sessions", Some(token)).unwrap().body;
    assert!(seen(&quinn).contains(&gid), "{}", seen(&quinn));
    assert!(!seen(crate::common::daemon::BOB).contains(&gid));
}
