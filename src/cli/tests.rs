//! The command definitions themselves: every command and option described,
//! client options only where they mean something.

use super::Cli;
use clap::CommandFactory;

const CLIENT_ONLY: [&str; 4] = ["url", "token", "ca", "json"];

fn walk(cmd: &clap::Command, path: &str, f: &mut impl FnMut(&str, &clap::Command)) {
    f(path, cmd);
    for sub in cmd.get_subcommands() {
        walk(sub, &format!("{path} {}", sub.get_name()), f);
    }
}

#[test]
fn every_command_and_option_has_a_description() {
    let mut cmd = Cli::command();
    cmd.build();
    let mut missing = Vec::new();
    walk(&cmd, "jitgate", &mut |path, c| {
        if c.get_about().is_none() && path != "jitgate" {
            missing.push(format!("{path}: no about"));
        }
        for a in c.get_arguments() {
            if a.get_help().is_none() && a.get_long_help().is_none() {
                missing.push(format!("{path}: {} has no help", a.get_id()));
            }
        }
    });
    assert!(missing.is_empty(), "{missing:#?}");
}

#[test]
fn client_options_only_on_client_commands() {
    let mut cmd = Cli::command();
    cmd.build();
    let daemon_side = [
        "serve",
        "check-config",
        "token",
        "token new",
        "connect",
        "completions",
        "man",
    ];
    walk(&cmd, "", &mut |path, c| {
        let path = path.trim();
        let has: Vec<&str> = CLIENT_ONLY
            .iter()
            .copied()
            .filter(|id| c.get_arguments().any(|a| a.get_id() == *id))
            .collect();
        if daemon_side.contains(&path) || path.split(' ').any(|w| w == "help") {
            // `connect` has its own --ca (the proxy's CA), not the API's.
            let allowed: &[&str] = if path == "connect" { &["ca"] } else { &[] };
            let wrong: Vec<&&str> = has.iter().filter(|h| !allowed.contains(h)).collect();
            assert!(wrong.is_empty(), "{path} lists {wrong:?}");
        } else {
            assert_eq!(has, CLIENT_ONLY, "{path:?} lacks client options");
        }
    });
}

#[test]
fn state_filters_list_their_values() {
    let mut cmd = Cli::command();
    cmd.build();
    for (sub, want) in [("requests", "pending"), ("grants", "revoked")] {
        let c = cmd
            .find_subcommand(sub)
            .map(|c| c.clone().render_help().to_string());
        let help = c.unwrap_or_default();
        assert!(help.contains(want), "{sub} --help: {help}");
    }
}

/// Effective `--url`/`--json` for `args` (no JITGATE_* variables involved
/// unless the environment sets them, which these values override).
fn effective(args: &[&str]) -> (String, bool) {
    use clap::FromArgMatches;
    let m = Cli::command()
        .try_get_matches_from(args)
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let cli = Cli::from_arg_matches(&m).unwrap_or_else(|e| panic!("{e}"));
    let (_, sub_m) = m.subcommand().unwrap_or_else(|| panic!("no subcommand"));
    let sub = cli
        .command
        .api()
        .unwrap_or_else(|| panic!("not a client command"));
    let a = super::effective_api_args(&cli.api, &m, sub, sub_m);
    (a.url, a.json)
}

#[test]
fn client_options_work_before_and_after_the_command() {
    let url = |u: &str| u.to_string();
    assert_eq!(
        effective(&["j", "--url", "http://a", "whoami"]),
        (url("http://a"), false)
    );
    assert_eq!(
        effective(&["j", "whoami", "--url", "http://b"]),
        (url("http://b"), false)
    );
    // After the command wins over before it.
    assert_eq!(
        effective(&["j", "--url", "http://a", "grants", "--url", "http://b", "--json"]),
        (url("http://b"), true)
    );
    assert_eq!(
        effective(&["j", "--json", "audit", "--url", "http://c"]),
        (url("http://c"), true)
    );
}

#[test]
fn each_server_url_gets_its_own_safe_directory_name() {
    use super::client_dir::slug;
    let a = slug("http://127.0.0.1:8080");
    assert!(a.starts_with("127.0.0.1_8080-"), "{a}");
    assert_eq!(
        a,
        slug("http://127.0.0.1:8080/"),
        "a trailing slash is the same server"
    );
    for other in [
        "https://127.0.0.1:8080",
        "http://127.0.0.1:8081",
        "http://127.0.0.1:8080/jitgate",
    ] {
        assert_ne!(slug(other), a, "{other}");
    }
    let odd = slug("http://../../etc:1/\u{1b}[31m");
    assert!(
        odd.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')),
        "{odd}"
    );
    assert!(!odd.contains('/') && odd != ".." && odd != ".");
}

#[test]
fn the_request_command_names_the_default_and_a_reason_only_when_required() {
    use super::grant_for::request_command;
    let t = serde_json::json!({"default_duration": "1h 30m", "require_reason": false});
    assert_eq!(
        request_command("prod-web", &t),
        "jitgate request prod-web --for 1h30m"
    );
    let t = serde_json::json!({"default_duration": "30m", "require_reason": true});
    assert_eq!(
        request_command("prod-db", &t),
        "jitgate request prod-db --for 30m --reason \"...\""
    );
}
