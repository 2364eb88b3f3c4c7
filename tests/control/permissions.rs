//! What the daemon writes under data_dir (the SQLite store, TLS and SSH
//! private keys, certificates) is readable by its own user only.

use crate::common;

use common::daemon::*;
use common::free_port;
use std::os::unix::fs::PermissionsExt;

#[test]
fn data_dir_is_0700_and_every_file_in_it_is_private() {
    let extra = format!(
        "\n[listeners.tcp]\nlisten = \"127.0.0.1:{}\"\n\n[listeners.postgres]\nlisten = \"127.0.0.1:{}\"\n\n[listeners.ssh]\nlisten = \"127.0.0.1:{}\"\n",
        free_port(),
        free_port(),
        free_port()
    );
    let d = Daemon::start_with(None, &extra);
    // Something is stored, so the SQLite file and its WAL exist.
    d.create_request(BOB, "auto-web", "5m");
    let data = d.dir.join("data");
    let mode = std::fs::metadata(&data).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "data_dir is {:o}", mode & 0o777);
    let mut names = Vec::new();
    for e in std::fs::read_dir(&data).unwrap() {
        let e = e.unwrap();
        let mode = e.metadata().unwrap().permissions().mode();
        let name = e.file_name().to_string_lossy().into_owned();
        assert_eq!(mode & 0o077, 0, "{name} is {:o}", mode & 0o777);
        names.push(name);
    }
    names.sort();
    // The keys this test is about were really written there.
    for want in ["tcp-key", "postgres-key", "ssh-host", ".db"] {
        assert!(
            names.iter().any(|n| n.contains(want)),
            "no file with {want:?} in data_dir: {names:?}"
        );
    }
    eprintln!("data_dir holds: {names:?}");
}
