//! Accessibility checks of the web console in the real browser: axe-core
//! (vendored in tests/fixtures/axe, a test fixture only, never served) run
//! on the page as it stands, and keyboard walks with real WebDriver key
//! events.
//!
//! axe is injected through WebDriver's execute script, which Chromium runs
//! through the DevTools protocol outside the page's Content-Security-Policy,
//! so the console's CSP is not loosened for the test (and the test would
//! show a violation report if it were blocked: `data-problems`).

use super::browser::Browser;
use serde_json::{json, Value};

/// axe-core 4.14.1, unchanged from the npm package (see its README there).
const AXE: &str = include_str!("../fixtures/axe/axe.min.js");

pub const TAB: &str = "\u{e004}";
pub const SHIFT: &str = "\u{e008}";
pub const ENTER: &str = "\u{e007}";
pub const SPACE: &str = "\u{e00d}";
pub const ESCAPE: &str = "\u{e00c}";

/// Loads axe into the page once (a page load clears it).
fn inject(b: &Browser) {
    if b.js("return typeof window.axe === 'object'", vec![]) == json!(true) {
        return;
    }
    // The fixture is a UMD bundle: run as a function body it keeps its
    // top-level `axe` local, so publish it on window explicitly.
    let script = format!(
        "{AXE}\n;if (typeof axe !== 'undefined') window.axe = axe; return typeof window.axe === 'object';"
    );
    assert_eq!(b.js(&script, vec![]), json!(true), "axe-core did not load");
}

/// axe's violations on the page as it is now (every rule axe runs by
/// default: WCAG 2.0/2.1/2.2 A and AA and its best practices).
pub fn violations(b: &Browser) -> Vec<Value> {
    inject(b);
    let r = b.js(
        "return axe.run(document, { resultTypes: ['violations'] }).then(r => r.violations.map(v => ({ id: v.id, impact: v.impact, help: v.help, url: v.helpUrl, nodes: v.nodes.map(n => ({ target: n.target.join(' '), html: n.html.slice(0, 200), why: n.failureSummary })) })))",
        vec![],
    );
    r.as_array().cloned().unwrap_or_default()
}

/// Violations as a person reads them: rule, impact, what to fix, and each
/// offending element with axe's own explanation.
pub fn describe(vs: &[Value]) -> String {
    let mut out = String::new();
    for v in vs {
        out += &format!(
            "- {} ({}): {}\n  {}\n",
            v["id"].as_str().unwrap_or("?"),
            v["impact"].as_str().unwrap_or("?"),
            v["help"].as_str().unwrap_or(""),
            v["url"].as_str().unwrap_or("")
        );
        for n in v["nodes"].as_array().into_iter().flatten() {
            out += &format!(
                "    at {}\n      {}\n      {}\n",
                n["target"].as_str().unwrap_or(""),
                n["html"].as_str().unwrap_or(""),
                n["why"].as_str().unwrap_or("").replace('\n', "\n      ")
            );
        }
    }
    out
}

/// Applies (or removes) the console's dark palette as if the system asked
/// for it: the rules inside its `prefers-color-scheme: dark` block are
/// copied to the end of the same stylesheet through the CSSOM (which the
/// CSP allows), so nothing about the browser's launch has to change.
fn dark(b: &Browser, on: bool) {
    let ok = b.js(
        "const on = arguments[0]; \
         for (const sheet of document.styleSheets) { \
           if (on) { \
             const inner = [...sheet.cssRules].filter(r => r.media && r.conditionText.includes('prefers-color-scheme: dark')).flatMap(r => [...r.cssRules]); \
             const at = sheet.cssRules.length; \
             for (const r of inner) sheet.insertRule(r.cssText, sheet.cssRules.length); \
             if (inner.length) { window.__a11yDark = { sheet, at }; return true; } \
           } else if (window.__a11yDark && window.__a11yDark.sheet === sheet) { \
             while (sheet.cssRules.length > window.__a11yDark.at) sheet.deleteRule(sheet.cssRules.length - 1); \
             window.__a11yDark = null; return true; \
           } \
         } \
         return !on;",
        vec![json!(on)],
    );
    assert_eq!(ok, json!(true), "could not switch the dark palette {on}");
}

/// Fails with a readable list when axe finds any violation on `page`, in
/// the light palette or the dark one.
pub fn assert_clean(b: &Browser, page: &str) {
    let light = violations(b);
    dark(b, true);
    let dark_vs = violations(b);
    dark(b, false);
    assert!(
        light.is_empty() && dark_vs.is_empty(),
        "axe-core found accessibility violations on {page}:\n{}{}",
        if light.is_empty() {
            String::new()
        } else {
            format!("in the light palette:\n{}", describe(&light))
        },
        if dark_vs.is_empty() {
            String::new()
        } else {
            format!("in the dark palette:\n{}", describe(&dark_vs))
        },
    );
}

/// A short, stable description of the focused element, for messages.
pub fn focused(b: &Browser) -> String {
    b.js(
        "const e = document.activeElement; if (!e) return 'nothing'; return e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className ? '.' + String(e.className).split(' ').join('.') : '') + ' ' + JSON.stringify((e.textContent || e.getAttribute('aria-label') || '').trim().slice(0, 40));",
        vec![],
    )
    .as_str()
    .unwrap_or_default()
    .to_string()
}

/// Marks every visible, enabled control under `scope` (links, buttons,
/// fields) with `data-a11y-n`, and returns how many there are.
fn mark_controls(b: &Browser, scope: &str) -> usize {
    b.js(
        "let n = 0; for (const e of document.querySelectorAll(arguments[0])) { \
           const ok = !e.disabled && e.getClientRects().length > 0 && !e.closest('[inert],[hidden]'); \
           if (ok) e.dataset.a11yN = String(n++); else delete e.dataset.a11yN; } return n;",
        vec![json!(format!(
            "{scope} a[href], {scope} button, {scope} input, {scope} select, {scope} textarea, {scope} summary"
        ))],
    )
    .as_u64()
    .unwrap_or(0) as usize
}

/// Presses Tab from the top of the page until focus has visited every
/// control under `scope` or wrapped around; fails naming the controls Tab
/// never reached. Returns the focus order (as `focused` describes it).
pub fn tab_reaches_every_control(b: &Browser, scope: &str, page: &str) -> Vec<String> {
    let want = mark_controls(b, scope);
    assert!(want > 0, "no controls under {scope} on {page}");
    // Start where a person arriving at the page starts: the first Tab stop,
    // the "Skip to content" link.
    b.js(
        "document.querySelector('a.skip').focus(); return true",
        vec![],
    );
    let mut seen = std::collections::BTreeSet::new();
    let mut order = vec![focused(b)];
    if let Some(n) = b
        .js(
            "return document.activeElement.dataset.a11yN ?? null",
            vec![],
        )
        .as_str()
    {
        seen.insert(n.to_string());
    }
    let limit = want * 3 + 20;
    let mut last: Option<String> = None;
    for _ in 0..limit {
        b.keys(TAB);
        let n = b.js(
            "const e = document.activeElement; return e && e.dataset ? (e.dataset.a11yN ?? null) : null",
            vec![],
        );
        order.push(focused(b));
        if let Some(n) = n.as_str() {
            // A compound control (a datetime-local's day, month, hour...)
            // keeps focus over several Tabs: that is not a wrap.
            if last.as_deref() != Some(n) && !seen.insert(n.to_string()) {
                break; // wrapped around
            }
        }
        last = n.as_str().map(str::to_string);
        if seen.len() == want {
            break;
        }
    }
    let missed = b.js(
        "return [...document.querySelectorAll('[data-a11y-n]')].filter(e => !arguments[0].includes(e.dataset.a11yN)).map(e => e.outerHTML.slice(0, 160))",
        vec![json!(seen.iter().cloned().collect::<Vec<_>>())],
    );
    assert!(
        seen.len() == want,
        "Tab never reached {} of {want} controls on {page}: {missed}\nfocus order: {order:#?}",
        want - seen.len()
    );
    order
}

/// Presses `key` on the focused element and says whether focus stayed
/// inside `container`.
pub fn key_keeps_focus_in(b: &Browser, key: &str, container: &str) -> bool {
    b.keys(key);
    b.js(
        "const c = document.querySelector(arguments[0]); return !!c && c.contains(document.activeElement)",
        vec![json!(container)],
    ) == json!(true)
}
