//! A full file system under data_dir (SQLite store): writes are refused with
//! a clear 503, no write is acknowledged and then lost, and the daemon
//! recovers by itself once space is freed. Needs a tmpfs mount (root);
//! skipped loudly otherwise.

use crate::common;

use common::daemon::*;
use std::process::Command;

struct Tmpfs(std::path::PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn create(d: &Daemon) -> Resp {
    let body = r#"{"target":"auto-web","duration":"10m","reason":"INC-9"}"#;
    d.post("/v1/requests", Some(BOB), body).unwrap()
}

#[test]
fn a_full_disk_refuses_writes_loses_none_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&data)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        common::e2e_skip("cannot mount a tmpfs for the full-disk test (needs root and mount)");
        return;
    }
    let _umount = Tmpfs(data.clone());
    let url = format!("sqlite://{}/jitgate.db", data.display());
    let mut d = Daemon::start_with(Some(&url), "");
    let mut acknowledged = Vec::new();
    let r = create(&d);
    assert_eq!(r.status, 201, "{}", r.body);
    acknowledged.push(r.json()["id"].as_str().unwrap().to_string());

    let filler = data.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 64 << 10];
    while std::io::Write::write_all(&mut f, &chunk).is_ok() {}
    drop(f);
    let mut refused = 0;
    for _ in 0..30 {
        let r = create(&d);
        match r.status {
            201 => acknowledged.push(r.json()["id"].as_str().unwrap().to_string()),
            503 => {
                refused += 1;
                assert!(r.body.contains("disk is full"), "{}", r.body);
            }
            s => panic!("unexpected {s} on a full disk: {}", r.body),
        }
    }
    assert!(refused > 0, "no write was refused on a full disk");

    std::fs::remove_file(&filler).unwrap();
    for _ in 0..5 {
        let r = create(&d);
        assert_eq!(
            r.status, 201,
            "not recovered after freeing space: {}",
            r.body
        );
        acknowledged.push(r.json()["id"].as_str().unwrap().to_string());
    }
    // Every acknowledged request is really there after a restart (so from
    // the file, not from anything the first process kept in memory), and
    // the chain verifies.
    let st = d.stop();
    assert!(st.success(), "jitgate exited with {st}: {}", d.logs());
    d.spawn();
    for id in &acknowledged {
        let r = d.get(&format!("/v1/requests/{id}"), Some(DAVE)).unwrap();
        assert_eq!(
            r.status, 200,
            "acknowledged request {id} was lost: {}",
            r.body
        );
    }
    let v = d.cli(DAVE, &["audit", "--verify"]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
}
