//! docs/config.md and docs/api.md cannot drift from the code: every config
//! key the parser knows is documented and every documented key is known,
//! the complete example validates, and every admin route is documented.

use std::collections::{BTreeMap, BTreeSet};

fn read(rel: &str) -> String {
    let path = format!("{}/{rel}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The text of each `` `x` `` span in `line`.
fn code_spans(line: &str) -> Vec<&str> {
    line.split('`').skip(1).step_by(2).collect()
}

/// A heading such as ``## `[server]` `` or ``## `[[targets]]` `` names a
/// section; `[targets.upstream]` is the upstream of any `[[targets]]`.
fn heading_section(line: &str) -> Option<String> {
    if !line.starts_with('#') {
        return None;
    }
    let span = *code_spans(line).first()?;
    let inner = span.strip_prefix('[')?.strip_suffix(']')?;
    let inner = inner
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(inner);
    Some(inner.to_string())
}

/// Section -> keys documented for it (first cells of its table rows), and
/// the complete example.
fn config_doc() -> (BTreeMap<String, BTreeSet<String>>, String) {
    let doc = read("docs/config.md");
    let mut sections: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut example = String::new();
    let mut in_example = false;
    let mut after_example_heading = false;
    for line in doc.lines() {
        if line.starts_with("## Complete example") {
            after_example_heading = true;
            current = None;
            continue;
        }
        if after_example_heading {
            if line.starts_with("```toml") {
                in_example = true;
                continue;
            }
            if in_example && line.starts_with("```") {
                in_example = false;
                after_example_heading = false;
                continue;
            }
            if in_example {
                example.push_str(line);
                example.push('\n');
            }
            continue;
        }
        if let Some(s) = heading_section(line) {
            sections.entry(s.clone()).or_default();
            current = Some(s);
            continue;
        }
        if line.starts_with('#') {
            current = None;
            continue;
        }
        if let (Some(s), Some(cell)) = (&current, line.strip_prefix("| `")) {
            if let Some(key) = cell.split('`').next() {
                sections
                    .entry(s.clone())
                    .or_default()
                    .insert(key.to_string());
            }
        }
    }
    (sections, example)
}

#[test]
fn every_config_key_is_documented_and_every_documented_key_exists() {
    let (known, free_form) = jitgate::config::known_keys();
    let (mut documented, _) = config_doc();
    // A section's sub-sections are its keys too ([listeners.ssh] documents
    // `ssh` of [listeners]; every top-level heading a top-level key).
    let names: Vec<String> = documented.keys().cloned().collect();
    for name in names {
        let (parent, key) = name.rsplit_once('.').unwrap_or(("", name.as_str()));
        documented
            .entry(parent.to_string())
            .or_default()
            .insert(key.to_string());
    }
    for (section, keys) in known {
        let want: BTreeSet<String> = keys.iter().map(|k| k.to_string()).collect();
        let have = documented.remove(*section).unwrap_or_default();
        let missing: Vec<_> = want.difference(&have).collect();
        let extra: Vec<_> = have.difference(&want).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "section [{section}]: undocumented {missing:?}, documented but unknown {extra:?}"
        );
    }
    // What is left must be a free-form section with no key rows.
    for (section, keys) in documented {
        assert!(
            free_form.contains(&section.as_str()),
            "docs/config.md documents [{section}], which the parser does not know"
        );
        assert!(keys.is_empty(), "[{section}] takes free names: {keys:?}");
    }
}

#[test]
fn the_complete_example_in_the_config_reference_validates() {
    let (_, example) = config_doc();
    assert!(example.contains("[[policies]]"), "no example found");
    // The example names these; validation checks that they are set. This is
    // the only test in this binary that touches the environment.
    std::env::set_var("PROD_DB_PASSWORD", "example");
    std::env::set_var("JITGATE_HOOK_SECRET", "example");
    std::env::set_var("JITGATE_OIDC_SECRET", "example");
    if let Err(e) = jitgate::config::parse_offline(&example) {
        panic!("docs/config.md example:\n{}", e.errors().join("\n"));
    }
    // And it really uses every key (the reference's promise).
    let (known, _) = jitgate::config::known_keys();
    let example_keys: BTreeSet<&str> = example
        .lines()
        .flat_map(|l| {
            let l = l.trim();
            let mut keys = Vec::new();
            if let Some((k, _)) = l.split_once(" = ") {
                keys.push(k.trim());
            }
            // Inline tables: `{ user = "x", tls = "y" }`.
            if let Some(inner) = l.split_once('{').map(|x| x.1) {
                for part in inner.split(',') {
                    if let Some((k, _)) = part.split_once(" = ") {
                        keys.push(k.trim());
                    }
                }
            }
            keys
        })
        .collect();
    for (section, keys) in known {
        for key in *keys {
            let is_table = known.iter().any(|(s, _)| {
                *s == if section.is_empty() {
                    key.to_string()
                } else {
                    format!("{section}.{key}")
                }
            });
            if !is_table && !section.is_empty() {
                assert!(
                    example_keys.contains(key),
                    "the complete example does not use [{section}] {key}"
                );
            }
        }
    }
}

/// `(METHOD, "/route")` for every arm of the router's match: the method
/// written as `&M::GET` or `&Method::GET`, the route label the first string
/// literal starting with `/` after it.
fn router_routes() -> BTreeSet<String> {
    let src = read("src/admin/router.rs");
    let mut out = BTreeSet::new();
    for marker in ["(&M::", "(&Method::"] {
        for (at, _) in src.match_indices(marker) {
            let rest = &src[at + marker.len()..];
            let method: String = rest
                .chars()
                .take_while(|c| c.is_ascii_uppercase())
                .collect();
            let Some(start) = rest.find("\"/") else {
                continue;
            };
            let label = &rest[start + 1..];
            let label = &label[..label.find('"').unwrap_or(label.len())];
            out.insert(format!("{method} {label}"));
        }
    }
    out
}

#[test]
fn every_admin_route_is_documented_and_every_documented_route_exists() {
    let routes = router_routes();
    assert!(routes.len() >= 20, "router parse found only {routes:?}");
    assert!(routes.contains("POST /v1/grants/{id}/secret"), "{routes:?}");
    let doc = read("docs/api.md");
    let documented: BTreeSet<String> = doc
        .lines()
        .filter(|l| l.starts_with("### `"))
        .filter_map(|l| code_spans(l).first().map(|s| s.to_string()))
        .collect();
    let missing: Vec<_> = routes.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&routes).collect();
    assert!(
        missing.is_empty(),
        "routes missing from docs/api.md: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "docs/api.md documents unknown routes: {extra:?}"
    );
}
