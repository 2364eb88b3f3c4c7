//! A real headless Chromium driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`), with a synchronous face so browser tests read like the
//! rest of the suite. chromedriver runs on a free port per test; one browser
//! runs at a time (2-core machines), so tests stay independent but do not
//! fight for CPU.

use super::{e2e_skip, free_port};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Generous bound that catches a hang; tests wait for behaviour, not time.
pub const WAIT: Duration = Duration::from_secs(30);
pub const DESKTOP: (u32, u32) = (1280, 900);
pub const PHONE: (u32, u32) = (390, 844);

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

pub struct Browser {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    base: String,
    _profile: tempfile::TempDir,
    _turn: MutexGuard<'static, ()>,
}

fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for n in names {
            let p = dir.join(n);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

fn exe(env: &str, names: &[&str]) -> Option<PathBuf> {
    match std::env::var_os(env) {
        Some(p) if Path::new(&p).is_file() => Some(PathBuf::from(p)),
        _ => on_path(names),
    }
}

/// Where the screenshots go: target/console-screenshots/.
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("console-screenshots")
}

impl Browser {
    /// A browser pointed at `base` (the daemon's admin URL), or `None` after
    /// `e2e_skip` when Chromium or chromedriver is not installed.
    pub fn start(base: &str) -> Option<Browser> {
        let chrome = exe(
            "JITGATE_CHROMIUM",
            &["chromium", "chromium-browser", "google-chrome"],
        );
        let driver = exe("JITGATE_CHROMEDRIVER", &["chromedriver"]);
        let (Some(chrome), Some(driver)) = (chrome, driver) else {
            e2e_skip("chromium and chromedriver are not installed (Debian: apt-get install chromium chromium-driver)");
            return None;
        };
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        let profile = tempfile::Builder::new()
            .prefix("jitgate-chromium-")
            .tempdir()
            .expect("tempdir");
        let port = free_port();
        let log = std::fs::File::create(profile.path().join("chromedriver.log")).expect("log");
        let mut driver = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::from(log.try_clone().expect("dup")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn chromedriver");
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline || matches!(driver.try_wait(), Ok(Some(_))) {
                let _ = driver.kill();
                panic!("chromedriver did not start on port {port}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let user_data = profile.path().join("profile");
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chrome,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-dev-shm-usage",
                    "--disable-gpu",
                    "--no-first-run",
                    "--no-default-browser-check",
                    "--disable-extensions",
                    "--hide-scrollbars",
                    "--force-device-scale-factor=1",
                    "--lang=en-US",
                    format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
                    format!("--user-data-dir={}", user_data.display()),
                ],
            },
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let client = rt.block_on(async {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            ClientBuilder::new(connector)
                .capabilities(caps)
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
        });
        let client = match client {
            Ok(c) => c,
            Err(e) => {
                let _ = driver.kill();
                let log = std::fs::read_to_string(profile.path().join("chromedriver.log"))
                    .unwrap_or_default();
                panic!("could not start a Chromium session: {e}\n{log}");
            }
        };
        let b = Browser {
            rt,
            client: Some(client),
            driver,
            base: base.trim_end_matches('/').to_string(),
            _profile: profile,
            _turn: turn,
        };
        b.resize(DESKTOP);
        Some(b)
    }

    fn c(&self) -> &Client {
        self.client.as_ref().expect("browser open")
    }

    pub fn goto(&self, path: &str) {
        let url = format!("{}{path}", self.base);
        self.rt
            .block_on(self.c().goto(&url))
            .unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    /// Sets the viewport (not the window) to exactly `w` x `h` CSS pixels.
    pub fn resize(&self, (w, h): (u32, u32)) {
        let inner = self.js("return [window.innerWidth, window.innerHeight]", vec![]);
        let (iw, ih) = (
            inner[0].as_u64().unwrap_or(w as u64) as u32,
            inner[1].as_u64().unwrap_or(h as u64) as u32,
        );
        let outer = self
            .rt
            .block_on(self.c().get_window_size())
            .expect("window size");
        let (ow, oh) = (outer.0 as u32, outer.1 as u32);
        self.rt
            .block_on(
                self.c()
                    .set_window_size(w + ow.saturating_sub(iw), h + oh.saturating_sub(ih)),
            )
            .expect("set window size");
        let now = self.js("return window.innerWidth", vec![]);
        assert_eq!(now.as_u64(), Some(w as u64), "viewport width");
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) in the page.
    pub fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.rt
            .block_on(self.c().execute(script, args))
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Waits until `check` (a function body returning a truthy value) holds,
    /// and returns its value.
    pub fn wait_js(&self, what: &str, check: &str, args: Vec<Value>) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let v = self.js(check, args.clone());
            let truthy =
                !matches!(&v, Value::Null | Value::Bool(false)) && v != json!(0) && v != json!("");
            if truthy {
                return v;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; the page says:\n{}",
                    self.page_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The visible text of the first element matching `css`, once there is one.
    pub fn text(&self, css: &str) -> String {
        let v = self.wait_js(
            &format!("an element {css}"),
            "const e = document.querySelector(arguments[0]); return e ? (e.innerText || ' ') : null;",
            vec![json!(css)],
        );
        v.as_str().unwrap_or_default().trim().to_string()
    }

    /// Waits until the first element matching `css` has text containing `part`.
    pub fn wait_text(&self, css: &str, part: &str) -> String {
        let v = self.wait_js(
            &format!("{css} to say {part:?}"),
            "const e = document.querySelector(arguments[0]); return e && e.innerText.includes(arguments[1]) ? e.innerText : null;",
            vec![json!(css), json!(part)],
        );
        v.as_str().unwrap_or_default().to_string()
    }

    pub fn exists(&self, css: &str) -> bool {
        self.js(
            "return document.querySelector(arguments[0]) !== null",
            vec![json!(css)],
        ) == json!(true)
    }

    pub fn wait_gone(&self, css: &str) {
        self.wait_js(
            &format!("{css} to go away"),
            "return document.querySelector(arguments[0]) === null",
            vec![json!(css)],
        );
    }

    /// The first element matching `css` once it is displayed and enabled.
    pub fn find(&self, css: &str) -> Element {
        self.wait_js(
            &format!("{css} to be visible and enabled"),
            "const e = document.querySelector(arguments[0]); return !!e && !e.disabled && e.getClientRects().length > 0;",
            vec![json!(css)],
        );
        self.rt
            .block_on(self.c().find(Locator::Css(css)))
            .unwrap_or_else(|e| panic!("find {css}: {e}"))
    }

    /// A real click (WebDriver pointer input), not a synthetic event.
    pub fn click(&self, css: &str) {
        let e = self.find(css);
        self.rt
            .block_on(e.click())
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Types into the element as a keyboard would.
    pub fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.rt
            .block_on(e.send_keys(text))
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// Sends keys to whatever has focus (e.g. Escape or Tab).
    pub fn keys(&self, keys: &str) {
        let e = self
            .rt
            .block_on(self.c().active_element())
            .expect("active element");
        self.rt.block_on(e.send_keys(keys)).expect("send keys");
    }

    pub fn page_text(&self) -> String {
        self.js(
            "return document.body ? document.body.innerText : ''",
            vec![],
        )
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// Writes a PNG of the viewport to target/console-screenshots/NAME.png.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        // Let a frame render after the last change.
        self.js(
            "return new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))",
            vec![],
        );
        let png = self.rt.block_on(self.c().screenshot()).expect("screenshot");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            let _ = self
                .rt
                .block_on(async { tokio::time::timeout(WAIT, c.close()).await });
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
