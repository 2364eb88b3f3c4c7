//! Every fuzz target's check, run by `cargo test` on its seeds
//! (`proto-fixtures/fuzz/TARGET/`, in git) and on whatever the fuzzer has
//! kept locally (`fuzz/corpus/TARGET/`, not in git): a regression on a
//! known input fails here without a fuzzing run or a nightly toolchain. The
//! checks are the fuzz targets' own bodies (`fuzz/fuzz_targets/checks/`).

use std::path::Path;

#[path = "../../fuzz/fuzz_targets/checks/admin_json.rs"]
mod admin_json;
#[path = "../../fuzz/fuzz_targets/checks/config_toml.rs"]
mod config_toml;
#[path = "../../fuzz/fuzz_targets/checks/pg_frames.rs"]
mod pg_frames;
#[path = "../../fuzz/fuzz_targets/checks/pg_scram.rs"]
mod pg_scram;
#[path = "../../fuzz/fuzz_targets/checks/pg_startup.rs"]
mod pg_startup;
#[path = "../../fuzz/fuzz_targets/checks/tunnel_hello.rs"]
mod tunnel_hello;

/// A fuzz target's check.
type Check = fn(&[u8]);

const TARGETS: &[(&str, Check)] = &[
    ("admin_json", admin_json::check),
    ("config_toml", config_toml::check),
    ("pg_frames", pg_frames::check),
    ("pg_scram", pg_scram::check),
    ("pg_startup", pg_startup::check),
    ("tunnel_hello", tunnel_hello::check),
];

/// The files of `dir` (none if it does not exist), sorted.
fn inputs(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn every_fuzz_target_passes_on_its_seeds_and_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (name, check) in TARGETS {
        let seeds = inputs(&root.join("proto-fixtures/fuzz").join(name));
        assert!(
            seeds.len() >= 3,
            "{name}: expected a few seeds in proto-fixtures/fuzz/{name}"
        );
        let corpus = inputs(&root.join("fuzz/corpus").join(name));
        for f in seeds.iter().chain(&corpus) {
            let data = std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            let r = std::panic::catch_unwind(|| check(&data));
            assert!(r.is_ok(), "fuzz target {name} fails on {}", f.display());
        }
        eprintln!(
            "{name}: {} seeds, {} corpus inputs",
            seeds.len(),
            corpus.len()
        );
    }
}

/// The seeds reach past the first checks: a few are accepted, so the
/// replay exercises more than the error paths.
#[test]
fn the_seeds_include_inputs_that_parse() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |t: &str| -> Vec<Vec<u8>> {
        inputs(&root.join("proto-fixtures/fuzz").join(t))
            .iter()
            .map(|f| std::fs::read(f).unwrap())
            .collect()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let startups = read("pg_startup");
    let parsed = startups
        .iter()
        .filter(|d| {
            let mut r = &d[..];
            rt.block_on(jitgate::proxy::postgres::codec::read_initial(&mut r))
                .is_ok()
        })
        .count();
    assert!(parsed >= 3, "only {parsed} startup seeds parse");
    assert!(read("config_toml").iter().any(|d| std::str::from_utf8(d)
        .ok()
        .is_some_and(|t| jitgate::config::parse_offline(t).is_ok())));
}
