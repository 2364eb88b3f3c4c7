//! The sign-in is bound to the person's browser at each step another site
//! could drive: the console's one-time code is traded only with the cookie
//! its callback set in the browser that finished the login (login CSRF with
//! `/#code=` of the attacker's sign-in), and, with `confirm_cli_login`, a
//! CLI login starts at the IdP only from the confirmation page's form,
//! never from a GET.

use crate::common::idp::{Browser, Hop};
use crate::{console_code, exchange, json_of, start};

fn challenge() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(jitgate::secrets::sha256("v".repeat(43).as_bytes()))
}

fn set_cookie(hop: &Hop, name: &str) -> String {
    hop.header_values("set-cookie")
        .into_iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie: {}", hop.headers))
}

#[test]
fn a_console_code_is_traded_only_in_the_browser_that_finished_the_login() {
    let Some((d, idp)) = start("", &[]) else {
        return;
    };
    // The callback binds the code with a cookie only the exchange reads.
    let attacker = Browser::new();
    let callback = attacker.sign_in_at_idp(&format!("{}/auth/login", d.url()), &idp, "carol");
    let hop = attacker.get(&callback);
    assert_eq!(hop.status, 302, "{hop:?}");
    let cookie = set_cookie(&hop, "jitgate_exchange");
    for attr in ["Path=/auth/exchange", "HttpOnly", "SameSite=Strict"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    let code = hop
        .location
        .as_deref()
        .and_then(|l| l.split_once("/#code="))
        .map(|(_, c)| c.to_string())
        .expect("code");

    // The victim's browser, handed /#code= of the attacker's sign-in, has
    // no such cookie: refused, and the code is spent (a code is tried once).
    let victim = Browser::new();
    let r = exchange(&d, &victim, &code);
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.body.contains("another browser"), "{}", r.body);
    assert_eq!(exchange(&d, &attacker, &code).status, 403);

    // With a cookie of its own (its own sign-in under way), the victim's
    // browser still cannot trade the attacker's code; its own code works.
    let mine = console_code(&d, &idp, &victim, "bob");
    let theirs = console_code(&d, &idp, &attacker, "carol");
    let r = exchange(&d, &victim, &theirs);
    assert_eq!(r.status, 403, "{r:?}");
    let r = exchange(&d, &victim, &mine);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(json_of(&r)["user"], "bob");
    // Used: the answer clears the cookie.
    assert!(
        set_cookie(&r, "jitgate_exchange").contains("Max-Age=0"),
        "{}",
        r.headers
    );

    // Without any cookie (a plain API client): refused.
    let code = console_code(&d, &idp, &Browser::new(), "carol");
    let r = d
        .post(
            "/auth/exchange",
            None,
            &serde_json::json!({ "code": code }).to_string(),
        )
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.body);
    crate::common::tunnel::wait_for("auth.failed browser_mismatch in the audit", || {
        let a = d
            .get("/v1/audit?limit=1000", Some(crate::common::daemon::DAVE))
            .expect("audit");
        a.body.contains("browser_mismatch")
    });
}

#[test]
fn a_cli_login_starts_at_the_idp_only_from_its_confirmation_form() {
    let Some((d, idp)) = start("confirm_cli_login = true", &[]) else {
        return;
    };
    let start_url = format!(
        "{}/auth/login?cli_port=9&cli_challenge={}",
        d.url(),
        challenge()
    );
    // A GET (what another site can make the browser do) shows a page and
    // starts nothing at the IdP.
    let victim = Browser::new();
    let page = victim.get(&start_url);
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.location.is_none(), "{page:?}");
    assert!(
        page.body.contains("command line on this computer") && page.body.contains("port 9"),
        "{}",
        page.body
    );
    assert!(page
        .header_values("set-cookie")
        .iter()
        .all(|c| !c.starts_with("jitgate_signin=")));
    let cookie = set_cookie(&page, "jitgate_cli_confirm");
    for attr in ["Path=/auth/login", "HttpOnly", "SameSite=Strict"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    let csp = page.header_values("content-security-policy").join(" ");
    assert!(
        csp.contains(&format!("form-action 'self' {}", idp.issuer()))
            && csp.contains("frame-ancestors 'none'")
            && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(!page.body.contains("<script"), "{}", page.body);
    let confirm = Browser::confirm_value(&page).expect("a confirm field");

    // Another browser posting that form (a page of another site, without
    // the SameSite=Strict cookie) is refused, and the confirmation is spent.
    let other = Browser::new();
    let r = other.confirm(&start_url, &confirm);
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.body.contains("another browser"), "{}", r.body);
    let r = victim.confirm(&start_url, &confirm);
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.body.contains("already used"), "{}", r.body);
    // A form without its value, or with a forged one.
    let r = victim.post_form(&format!("{}/auth/login", d.url()), "x=1");
    assert_eq!(r.status, 400, "{r:?}");
    let r = victim.confirm(&start_url, "forged");
    assert_eq!(r.status, 403, "{r:?}");

    // The person's click: to the IdP, the state cookie set, the page's
    // cookie cleared.
    let page = victim.get(&start_url);
    let confirm = Browser::confirm_value(&page).expect("a confirm field");
    let r = victim.confirm(&start_url, &confirm);
    assert_eq!(r.status, 303, "{r:?}");
    assert!(
        r.location
            .as_deref()
            .is_some_and(|l| l.starts_with(&idp.issuer())),
        "{r:?}"
    );
    assert!(set_cookie(&r, "jitgate_signin").contains("Path=/auth/callback"));
    assert!(set_cookie(&r, "jitgate_cli_confirm").contains("Max-Age=0"));

    // The console's login has no such page: straight to the IdP.
    let r = Browser::new().get(&format!("{}/auth/login", d.url()));
    assert_eq!(r.status, 302, "{r:?}");
    assert!(r.location.is_some_and(|l| l.starts_with(&idp.issuer())));
}
