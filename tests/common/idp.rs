//! A real OpenID provider for the sign-in tests: panva/oidc-provider
//! (tests/idp, pinned by its package-lock.json) run by node on a free port,
//! and a cookie-keeping HTTP "browser" (curl with a cookie jar) that drives
//! its login form the way a person's browser would.
//!
//! Test users (tests/idp/idp.mjs): alice (groups oncall, jitgate-admins),
//! bob (oncall, idp-only-sre), carol (leads), badname (preferred_username
//! "Bad Name", which jitgate's name pattern refuses).

use super::wait::{kill_and_reap, OutputWithin, HANG};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Idp {
    child: Option<Child>,
    pub port: u16,
    redirect: String,
    env: Vec<(String, String)>,
    log: PathBuf,
    _tmp: tempfile::TempDir,
}

fn idp_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/idp")
}

/// Whether node and the pinned packages are here (running `npm ci` once if
/// only the packages are missing); None skips with the reason.
fn ready() -> Result<(), String> {
    let node = Command::new("node").arg("--version").output_within(HANG);
    if !node.status.success() {
        return Err("node is not installed (apt-get install nodejs npm)".into());
    }
    if !idp_dir().join("node_modules/oidc-provider").exists() {
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(idp_dir())
            .output_within(HANG);
        if !out.status.success() {
            return Err(format!(
                "npm ci in tests/idp failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    Ok(())
}

impl Idp {
    /// Starts the IdP for a jitgate whose callback is `redirect`; None (after
    /// `e2e_skip`) when node is missing.
    pub fn start(redirect: &str) -> Option<Idp> {
        Self::start_with_env(redirect, &[])
    }

    /// `start` with environment for idp.mjs (e.g. IDP_PUBLISH_OTHER_KEY).
    pub fn start_with_env(redirect: &str, env: &[(&str, &str)]) -> Option<Idp> {
        if let Err(why) = ready() {
            super::e2e_skip(&why);
            return None;
        }
        let tmp = tempfile::Builder::new()
            .prefix("jitgate-idp-")
            .tempdir()
            .expect("tempdir");
        let mut idp = Idp {
            child: None,
            port: super::free_port(),
            redirect: redirect.to_string(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            log: tmp.path().join("idp.log"),
            _tmp: tmp,
        };
        idp.launch();
        Some(idp)
    }

    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The `[auth.oidc]` section for a jitgate at `redirect`, plus `extra` keys.
    pub fn oidc_section(&self, extra: &str) -> String {
        format!(
            "\n[auth.oidc]\nissuer = \"{}\"\nclient_id = \"jitgate\"\nredirect_url = \"{}\"\nadmin_groups = [\"jitgate-admins\"]\n{extra}\n",
            self.issuer(),
            self.redirect
        )
    }

    fn launch(&mut self) {
        let log = std::fs::File::create(&self.log).expect("idp log");
        let child = Command::new("node")
            .arg(idp_dir().join("idp.mjs"))
            .arg(self.port.to_string())
            .arg(&self.redirect)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("dup")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn node");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        let discovery = format!("{}/.well-known/openid-configuration", self.issuer());
        loop {
            let out = Command::new("curl")
                .args(["-s", "-f", "--max-time", "5", &discovery])
                .output_within(HANG);
            if out.status.success() {
                return;
            }
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("the IdP exited with {st}: {}", self.logs());
            }
            assert!(
                Instant::now() < deadline,
                "the IdP did not answer discovery: {}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops and starts the IdP on the same port: a fresh signing key (and
    /// key id), and every session and pending login at the IdP forgotten.
    pub fn restart(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill_and_reap(&mut c);
        }
        self.launch();
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill_and_reap(&mut c);
        }
    }
}

/// One answer as the browser saw it.
#[derive(Debug)]
pub struct Hop {
    pub status: u16,
    /// The absolute URL of a redirect's Location.
    pub location: Option<String>,
    pub body: String,
    /// The response's header block, as received.
    pub headers: String,
}

impl Hop {
    /// Every value of header `name` (case-insensitive).
    pub fn header_values(&self, name: &str) -> Vec<String> {
        self.headers
            .lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
            .collect()
    }
}

/// A browser with its own cookie jar: two `Browser`s are two people's browsers.
pub struct Browser {
    dir: tempfile::TempDir,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    pub fn new() -> Browser {
        Browser {
            dir: tempfile::Builder::new()
                .prefix("jitgate-browser-")
                .tempdir()
                .expect("tempdir"),
        }
    }

    fn curl(&self, url: &str, form: Option<&str>, json: bool) -> Hop {
        let jar = self.dir.path().join("cookies");
        let body = self.dir.path().join("body");
        let headers = self.dir.path().join("headers");
        let mut c = Command::new("curl");
        c.args(["-s", "-S", "--max-time", "30", "-o"])
            .arg(&body)
            .arg("-D")
            .arg(&headers)
            .arg("-c")
            .arg(&jar)
            .arg("-b")
            .arg(&jar)
            .args(["-w", "%{http_code} %{redirect_url}"]);
        if let Some(f) = form {
            c.args(["--data", f]);
        }
        if json {
            c.args(["-H", "Content-Type: application/json"]);
        }
        let out = c.arg(url).output_within(HANG);
        assert!(
            out.status.success(),
            "curl {url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let w = String::from_utf8_lossy(&out.stdout).to_string();
        let (status, location) = w.split_once(' ').unwrap_or((&w, ""));
        Hop {
            status: status.parse().unwrap_or(0),
            location: (!location.is_empty()).then(|| location.to_string()),
            body: std::fs::read_to_string(&body).unwrap_or_default(),
            headers: std::fs::read_to_string(&headers).unwrap_or_default(),
        }
    }

    pub fn get(&self, url: &str) -> Hop {
        self.curl(url, None, false)
    }

    pub fn post_form(&self, url: &str, form: &str) -> Hop {
        self.curl(url, Some(form), false)
    }

    /// A same-origin fetch of a JSON body, with this browser's cookies (the
    /// console's POST /auth/exchange).
    pub fn post_json(&self, url: &str, body: &str) -> Hop {
        self.curl(url, Some(body), true)
    }

    /// Whether this is the CLI login's confirmation page; its form's
    /// `confirm` value.
    pub fn confirm_value(hop: &Hop) -> Option<String> {
        if hop.status != 200 {
            return None;
        }
        let (_, rest) = hop.body.split_once("name=\"confirm\" value=\"")?;
        rest.split_once('"').map(|(v, _)| v.to_string())
    }

    /// Submits the confirmation form of the page at `url` (the person's
    /// click): POST /auth/login with its `confirm` value.
    pub fn confirm(&self, url: &str, confirm: &str) -> Hop {
        let base = url.split_once("/auth/login").map_or(url, |(b, _)| b);
        self.post_form(&format!("{base}/auth/login"), &format!("confirm={confirm}"))
    }

    /// From jitgate's /auth/login URL (through the CLI login's confirmation
    /// page, submitted as the person would, when `confirm_cli_login` shows
    /// one; by default it redirects straight on) through the IdP's login form as
    /// `login`, up to (not including) the IdP's redirect back to jitgate:
    /// returns that callback URL (with code and state).
    pub fn sign_in_at_idp(&self, start: &str, idp: &Idp, login: &str) -> String {
        let mut url = start.to_string();
        let mut logged_in = false;
        for _ in 0..12 {
            if url.contains("/auth/callback") && !url.starts_with(&idp.issuer()) {
                return url;
            }
            let mut hop = self.get(&url);
            let ours = url.contains("/auth/login?") && !url.starts_with(&idp.issuer());
            if let Some(confirm) = Self::confirm_value(&hop).filter(|_| ours) {
                hop = self.confirm(&url, &confirm);
            }
            if hop.status == 200 && hop.body.contains("name=\"login\"") && !logged_in {
                logged_in = true;
                let next =
                    self.post_form(&url, &format!("prompt=login&login={login}&password=test"));
                url = match next.location {
                    Some(l) => l,
                    None => panic!(
                        "the IdP's login form did not redirect: {} {}",
                        next.status, next.body
                    ),
                };
                continue;
            }
            url = hop
                .location
                .unwrap_or_else(|| panic!("no redirect from {url}: {} {}", hop.status, hop.body));
        }
        panic!("the sign-in never came back to jitgate: {}", idp.logs());
    }
}
