//! A private OpenSSH sshd per test: its own host key, a free port on
//! 127.0.0.1, the proxy's upstream key authorized for an unprivileged test
//! user (created once with useradd when the tests run as root; sshd does not
//! deliver signals to root's sessions, so root would hide leftover
//! processes), stopped when dropped. Skipped loudly (or failed under
//! JITGATE_E2E=require) when sshd is not installed.

use super::{e2e_skip, free_port};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Sshd {
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// The target's host public key line, to pin in the config.
    pub host_key: String,
    /// The private key the proxy logs in with.
    pub upstream_key: PathBuf,
    /// The account the proxy logs in as.
    pub user: String,
    /// Its password, when the tests could set one (as root).
    pub password: Option<String>,
    /// A directory the user may write.
    pub work: PathBuf,
    child: Child,
}

/// The unprivileged login on the private sshd.
pub const TEST_USER: &str = "jitgate-t";
const TEST_PASSWORD: &str = "jitgate-test-Pw-4417";

fn run(cmd: &str, args: &[&str]) -> Option<String> {
    let o = Command::new(cmd).args(args).output().ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// (user, uid, password): the test user when root may create it, else the
/// current user, who has no password the tests know.
fn login_user() -> (String, u32, Option<String>) {
    static USER: std::sync::OnceLock<(String, u32, Option<String>)> = std::sync::OnceLock::new();
    USER.get_or_init(|| {
        let me: u32 = run("id", &["-u"]).and_then(|u| u.parse().ok()).unwrap_or(0);
        if me != 0 {
            let name = run("id", &["-un"]).unwrap_or_default();
            return (name, me, None);
        }
        if run("id", &["-u", TEST_USER]).is_none() {
            // Exit 9 (exists) when another test binary got there first.
            let _ = Command::new("useradd")
                .args(["-m", "-s", "/bin/sh", TEST_USER])
                .status();
        }
        let uid = run("id", &["-u", TEST_USER])
            .and_then(|u| u.parse().ok())
            .expect("useradd could not create the sshd test user");
        let mut c = Command::new("chpasswd")
            .stdin(Stdio::piped())
            .spawn()
            .expect("chpasswd");
        std::io::Write::write_all(
            c.stdin.as_mut().unwrap(),
            format!("{TEST_USER}:{TEST_PASSWORD}\n").as_bytes(),
        )
        .unwrap();
        drop(c.stdin.take());
        assert!(c.wait().unwrap().success(), "chpasswd failed");
        (TEST_USER.to_string(), uid, Some(TEST_PASSWORD.to_string()))
    })
    .clone()
}

fn keygen(path: &Path, comment: &str) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen");
    assert!(st.success());
}

impl Sshd {
    pub fn start() -> Option<Sshd> {
        let bin = Path::new("/usr/sbin/sshd");
        if !bin.exists() || Command::new("ssh").arg("-V").output().is_err() {
            e2e_skip("OpenSSH server and client (/usr/sbin/sshd, ssh) not installed");
            return None;
        }
        let _ = std::fs::create_dir_all("/run/sshd");
        let dir = tempfile::Builder::new()
            .prefix("jitgate-sshd-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        keygen(&d.join("host_ed25519"), "target-host");
        keygen(&d.join("upstream_ed25519"), "jitgate-upstream");
        std::fs::copy(d.join("upstream_ed25519.pub"), d.join("authorized_keys")).unwrap();
        let (user, uid, password) = login_user();
        let work = d.join("work");
        std::fs::create_dir(&work).unwrap();
        std::os::unix::fs::chown(&work, Some(uid), None).unwrap();
        let port = free_port();
        let pw_auth = if password.is_some() { "yes" } else { "no" };
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_ed25519\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nPubkeyAuthentication yes\nPasswordAuthentication {pw_auth}\n\
             KbdInteractiveAuthentication no\nPermitRootLogin yes\nUsePAM no\nStrictModes no\n\
             AllowTcpForwarding yes\nAllowAgentForwarding no\nX11Forwarding no\nPermitTTY yes\n\
             AcceptEnv LANG LC_* JITGATE_*\nSubsystem sftp internal-sftp\nLogLevel VERBOSE\n",
            d = d.display()
        );
        std::fs::write(d.join("sshd_config"), config).unwrap();
        let child = Command::new(bin)
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(d.join("sshd.log")).unwrap(),
            ))
            .spawn()
            .expect("start sshd");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "sshd did not start");
            std::thread::sleep(Duration::from_millis(25));
        }
        let host_key = std::fs::read_to_string(d.join("host_ed25519.pub"))
            .unwrap()
            .trim()
            .to_string();
        Some(Sshd {
            port,
            host_key,
            upstream_key: d.join("upstream_ed25519"),
            user,
            password,
            work,
            dir,
            child,
        })
    }

    /// A target entry for this sshd, logging in with the upstream key.
    pub fn target(&self, name: &str) -> String {
        let cred = format!("key_file = \"{}\"", self.upstream_key.display());
        self.target_with(name, &cred)
    }

    /// A target entry logging in with the password in `$env_var`.
    pub fn target_with_password(&self, name: &str, env_var: &str) -> String {
        self.target_with(name, &format!("password_env = \"{env_var}\""))
    }

    fn target_with(&self, name: &str, credential: &str) -> String {
        format!(
            "\n[[targets]]\nname = \"{name}\"\nkind = \"ssh\"\naddress = \"127.0.0.1:{}\"\nhost_key = \"{}\"\nupstream = {{ user = \"{}\", {credential} }}\n",
            self.port, self.host_key, self.user
        )
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// bob's fixture key, copied to `dir` with the 0600 mode ssh insists on.
pub fn bob_key(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join("bob_ed25519");
    std::fs::write(&p, include_str!("../fixtures/ssh/bob_ed25519")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

/// ssh options for tests: no known_hosts, no agent, batch mode.
pub fn ssh_opts(key: &Path) -> Vec<String> {
    [
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "ConnectTimeout=20",
        "-i",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([key.display().to_string()])
    .collect()
}
