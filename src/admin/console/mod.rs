//! The web console: static HTML, CSS and JavaScript modules compiled into the
//! binary and served by the admin listener at `/`. The console is only a
//! client of the `/v1` JSON API (bearer token from the tab's sessionStorage),
//! so it has no cookie, no server-side session and no CSRF surface.
//!
//! What must hold:
//! - Every console response carries [`CSP`] and the other security headers:
//!   scripts and styles only from this origin, no inline script or style, no
//!   framing, no form posts, no referrer. `index.html` and the assets are
//!   checked for inline code by the tests below, so the CSP cannot silently
//!   break the page.
//! - Assets live under `/console/{VERSION}/`, where VERSION hashes every
//!   asset, so they can be cached as immutable; `index.html` (at `/`) is
//!   `no-cache` with an ETag, so a browser always revalidates it and an
//!   upgraded daemon is picked up at the next load. Relative imports between
//!   the modules resolve inside the same versioned folder.

use super::http::Resp;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use std::sync::LazyLock;

/// Scripts, styles, images and API calls from this origin only; nothing
/// inline; no plugins, frames, form posts or `<base>`; and DOM string sinks
/// (the HTML-parsing setters) refused outright through Trusted Types, since the
/// console builds its DOM with `textContent` only.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'";

struct Asset {
    name: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal) => {
        Asset {
            name: $name,
            body: include_bytes!(concat!("assets/", $name)),
        }
    };
}

/// Every file the console is made of, except `index.html` (templated below).
const ASSETS: &[Asset] = &[
    asset!("console.css"),
    asset!("favicon.svg"),
    asset!("app.js"),
    asset!("api.js"),
    asset!("dialog.js"),
    asset!("dom.js"),
    asset!("format.js"),
    asset!("signin.js"),
    asset!("requests.js"),
    asset!("sessions.js"),
    asset!("grants.js"),
    asset!("audit.js"),
    asset!("access.js"),
    asset!("request.js"),
    asset!("lifecycle.js"),
    asset!("recording.css"),
    asset!("recordings.js"),
    asset!("watch.js"),
    asset!("recview.js"),
    asset!("player.js"),
    asset!("term.js"),
    asset!("sse.js"),
    // xterm.js 6.0.0, vendored unchanged: see assets/vendor/README.md.
    asset!("vendor/xterm.js"),
    asset!("vendor/xterm.css"),
];

const INDEX_TEMPLATE: &str = include_str!("assets/index.html");
const VERSION_PLACEHOLDER: &str = "{{VERSION}}";

/// First 16 hex digits of a SHA-256 over every asset and the index template.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    let mut all = Vec::new();
    for a in ASSETS {
        all.extend_from_slice(a.name.as_bytes());
        all.push(0);
        all.extend_from_slice(&(a.body.len() as u64).to_be_bytes());
        all.extend_from_slice(a.body);
    }
    all.extend_from_slice(INDEX_TEMPLATE.as_bytes());
    hex::encode(&crate::secrets::sha256(&all)[..8])
});

static INDEX: LazyLock<Bytes> =
    LazyLock::new(|| Bytes::from(INDEX_TEMPLATE.replace(VERSION_PLACEHOLDER, &VERSION)));

/// The ETag of every console response: the content hash of the whole console,
/// since the index names the versioned asset folder.
static ETAG: LazyLock<String> = LazyLock::new(|| format!("\"{}\"", *VERSION));

/// The console's response for a GET or HEAD of `path`, with the route label
/// for the admin_requests_total metric; `None` when the path is not the
/// console's, so the router carries on with the API.
pub fn response(path: &str, if_none_match: Option<&str>) -> Option<(&'static str, Resp)> {
    if path == "/" || path == "/index.html" {
        return Some((
            "/",
            page(
                INDEX.clone(),
                "text/html; charset=utf-8",
                false,
                if_none_match,
            ),
        ));
    }
    let rest = path.strip_prefix("/console/")?;
    let found = rest
        .split_once('/')
        .filter(|(v, _)| *v == VERSION.as_str())
        .and_then(|(_, name)| ASSETS.iter().find(|a| a.name == name));
    let resp = match found {
        Some(a) => page(
            Bytes::from_static(a.body),
            content_type(a.name),
            true,
            if_none_match,
        ),
        // An unknown asset, or one of another version (a page loaded from a
        // daemon since upgraded): reloading the page fixes it.
        None => secured(
            StatusCode::NOT_FOUND,
            Bytes::from_static(b"no such console asset; reload the page\n"),
            "text/plain; charset=utf-8",
        ),
    };
    Some(("/console/{asset}", resp))
}

/// The versioned folder the current index names, for tests.
pub fn version() -> &'static str {
    &VERSION
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("html") => "text/html; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn page(body: Bytes, ctype: &'static str, immutable: bool, inm: Option<&str>) -> Resp {
    let fresh = inm.is_some_and(|v| {
        v.split(',')
            .any(|t| t.trim() == ETAG.as_str() || t.trim() == "*")
    });
    let mut r = if fresh {
        secured(StatusCode::NOT_MODIFIED, Bytes::new(), ctype)
    } else {
        secured(StatusCode::OK, body, ctype)
    };
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&ETAG) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if immutable {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        }),
    );
    r
}

fn secured(status: StatusCode, body: Bytes, ctype: &'static str) -> Resp {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=(), usb=()"),
    );
    if status == StatusCode::NOT_FOUND {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(a: &Asset) -> &str {
        std::str::from_utf8(a.body).unwrap_or("")
    }

    #[test]
    fn index_names_the_versioned_assets_and_nothing_inline() {
        let index = std::str::from_utf8(&INDEX).unwrap();
        assert!(!index.contains(VERSION_PLACEHOLDER));
        for name in ["console.css", "app.js", "favicon.svg"] {
            let url = format!("/console/{}/{name}", version());
            assert!(index.contains(&url), "index.html does not load {url}");
        }
        // The CSP forbids inline code: a <script> without src, a style
        // attribute or block, or an on* handler would be dead on arrival.
        let lower = index.to_ascii_lowercase();
        assert!(!lower.contains("<style"), "inline <style> in index.html");
        assert!(!lower.contains(" style="), "style attribute in index.html");
        assert!(
            !lower.contains("javascript:"),
            "javascript: URL in index.html"
        );
        for (i, _) in lower.match_indices("<script") {
            let tag = &lower[i..i + lower[i..].find('>').unwrap_or(0)];
            assert!(tag.contains(" src="), "inline script in index.html: {tag}");
        }
        for attr in [
            " onclick=",
            " onload=",
            " onerror=",
            " onsubmit=",
            " oninput=",
        ] {
            assert!(!lower.contains(attr), "inline handler {attr} in index.html");
        }
    }

    #[test]
    fn scripts_use_no_string_sinks_the_csp_refuses() {
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let js = text(a);
            for sink in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
                "new Function",
                ".setAttribute('style'",
            ] {
                assert!(!js.contains(sink), "{} uses {sink}", a.name);
            }
        }
    }

    #[test]
    fn every_module_import_is_an_embedded_asset() {
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            for line in text(a).lines().filter(|l| l.starts_with("import ")) {
                let spec = line
                    .rsplit_once(" from ")
                    .map(|(_, s)| s.trim().trim_end_matches(';').trim_matches('\''))
                    .unwrap_or("");
                let name = spec.strip_prefix("./").unwrap_or(spec);
                assert!(
                    ASSETS.iter().any(|x| x.name == name),
                    "{} imports {spec}, which is not embedded",
                    a.name
                );
            }
        }
    }

    #[test]
    fn assets_are_served_with_their_type_and_cache_rules() {
        let (_, r) = response("/", None).unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-cache");
        assert_eq!(r.headers()[header::CONTENT_SECURITY_POLICY], CSP);
        let etag = r.headers()[header::ETAG].to_str().unwrap().to_string();
        let (_, again) = response("/", Some(&etag)).unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

        let (_, js) = response(&format!("/console/{}/app.js", version()), None).unwrap();
        assert_eq!(js.status(), StatusCode::OK);
        assert_eq!(
            js.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        assert!(js.headers()[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .contains("immutable"));
        let (_, old) = response("/console/0000000000000000/app.js", None).unwrap();
        assert_eq!(old.status(), StatusCode::NOT_FOUND);
        let (_, escape) = response(&format!("/console/{}/../mod.rs", version()), None).unwrap();
        assert_eq!(escape.status(), StatusCode::NOT_FOUND);
        assert!(response("/v1/whoami", None).is_none());
        assert!(response("/healthz", None).is_none());
    }
}
