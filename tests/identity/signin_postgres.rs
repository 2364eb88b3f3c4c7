//! Two instances on one PostgreSQL store behind one redirect_url: a login
//! started on one is finished on the other (its state and codes live in the
//! store), and a lock recorded by one ends the sign-in on both.

use crate::common::daemon::{Daemon, DAVE};
use crate::common::idp::{Browser, Idp};
use crate::common::pg::PgCluster;

#[test]
fn instances_sharing_a_postgres_store_share_logins_and_locks() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let url = pg.create_db("identity_two_instances");
    let mut a = Daemon::configured(Some(&url), "instance = \"a\"", crate::IDP_GROUP_POLICY);
    let mut b = Daemon::configured(Some(&url), "instance = \"b\"", crate::IDP_GROUP_POLICY);
    let redirect = format!("{}/auth/callback", a.url());
    let Some(idp) = Idp::start(&redirect) else {
        return;
    };
    for d in [&a, &b] {
        let mut cfg = std::fs::read_to_string(&d.config).expect("config");
        cfg.push_str(&idp.oidc_section(""));
        std::fs::write(&d.config, cfg).expect("config");
    }
    a.spawn();
    b.spawn();

    // Started on a; the IdP sends the browser to a's callback, which a load
    // balancer may hand to b: b finishes it from the store.
    let browser = Browser::new();
    let callback = browser.sign_in_at_idp(&format!("{}/auth/login", a.url()), &idp, "bob");
    let on_b = callback.replace(&a.url(), &b.url());
    assert_ne!(on_b, callback);
    let hop = browser.get(&on_b);
    assert_eq!(hop.status, 302, "{hop:?}\n{}", b.logs());
    let loc = hop.location.unwrap_or_default();
    let code = loc
        .split_once("/#code=")
        .map(|x| x.1)
        .expect("code")
        .to_string();
    // The code is traded on a.
    let r = crate::exchange(&a, &browser, &code);
    assert_eq!(r.status, 200, "{}", r.body);
    let token = crate::json_of(&r)["token"].as_str().unwrap().to_string();
    for d in [&a, &b] {
        assert_eq!(d.get("/v1/whoami", Some(&token)).unwrap().status, 200);
    }
    // A lock recorded on b ends the sign-in on a at once.
    let r = b
        .post(
            "/v1/users/bob/lock",
            Some(DAVE),
            r#"{"reason": "offboarded"}"#,
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    for d in [&a, &b] {
        assert_eq!(d.get("/v1/whoami", Some(&token)).unwrap().status, 401);
    }
}

/// A user only the IdP knows logs in to PostgreSQL through the proxy as
/// `zoe@TARGET` with the connect secret of a grant an IdP group gave them.
#[test]
fn a_user_only_the_idp_knows_logs_in_to_postgres_through_the_proxy() {
    use crate::common::pgproxy::{PgProxy, PASSWORD_ENV, ROLE_PASSWORD};
    let Some(cluster) = PgCluster::shared() else {
        return;
    };
    let (role, db) = ("jit_oidc_role".to_string(), "oidc_app".to_string());
    cluster.admin_sql(&format!(
        "CREATE ROLE {role} LOGIN PASSWORD '{ROLE_PASSWORD}'"
    ));
    cluster.admin_sql(&format!("CREATE DATABASE {db} OWNER {role}"));
    std::env::set_var(PASSWORD_ENV, ROLE_PASSWORD);
    let port = crate::common::free_port();
    let extra = format!(
        "\n[listeners.postgres]\nlisten = \"127.0.0.1:{port}\"\n\n[[targets]]\nname = \"sre-db\"\nkind = \"postgres\"\naddress = \"127.0.0.1:{}\"\nupstream = {{ user = \"{role}\", password_env = \"{PASSWORD_ENV}\", tls = \"disable\" }}\n",
        cluster.port
    );
    let users = r#"{"zoe": {"preferred_username": "zoe", "groups": ["idp-only-sre"]}}"#;
    let Some((d, idp)) = crate::start_with(&extra, "", &[("IDP_USERS", users)]) else {
        return;
    };
    let zoe = crate::sign_in(&d, &idp, "zoe");
    let p = PgProxy {
        cluster,
        d,
        port,
        role,
        db,
    };
    let (_gid, secret) = p.grant(&zoe, "sre-db", "5m");
    let out = p.psql("zoe@sre-db", &secret, "select 40 + 2");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout} {stderr}\n{}", p.d.logs());
    assert_eq!(stdout.trim(), "42");
}
