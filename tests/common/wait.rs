//! Deadlines for every wait on a child process: a regression that leaves a
//! client hanging (a session that is never closed) fails its test with a
//! message instead of hanging CI until its time limit.

use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// The bound on a client that should end by itself: generous, it only
/// catches a hang (no test asserts timing with it).
pub const HANG: Duration = Duration::from_secs(120);

/// The bound on one whole test (the slowest, pgbench and 100 MB copies, take
/// a minute or two on a loaded CI machine).
pub const TEST_LIMIT: Duration = Duration::from_secs(15 * 60);

/// Waits for a child's exit and output, at most `limit`: a regression that
/// leaves a client hanging fails the test instead of hanging CI. The output
/// is read while waiting, so a chatty child cannot block on a full pipe.
pub fn wait_output(child: std::process::Child, limit: std::time::Duration) -> std::process::Output {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("the child's output"),
        Err(_) => {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
            panic!("child process {pid} still running after {limit:?}");
        }
    }
}

/// `Command::output` with a deadline.
pub trait OutputWithin {
    /// Like `output()` (stdin is null, stdout and stderr captured), but the
    /// child is killed and the test fails after `limit`. A command that needs
    /// stdin is spawned by its caller and waited with [`wait_output`].
    fn output_within(&mut self, limit: Duration) -> Output;
}

impl OutputWithin for Command {
    fn output_within(&mut self, limit: Duration) -> Output {
        let child = self
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {:?}: {e}", self.get_program()));
        wait_output(child, limit)
    }
}

/// Waits for a child's exit, at most `limit`; kills it and fails the test
/// after that. For children whose output goes elsewhere (null, a file).
pub fn wait_status(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return st,
            Ok(None) => {}
            Err(e) => panic!("waiting for child {}: {e}", child.id()),
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child process {} still running after {limit:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills a child that may still run and reaps it (kill then wait cannot hang:
/// SIGKILL is not ignorable).
pub fn kill_and_reap(child: &mut Child) {
    let _ = child.kill();
    let _ = wait_status(child, HANG);
}

/// Fails the whole test binary if one test runs longer than `limit`: held by
/// every `Daemon`, so a test stuck anywhere (a read, a lock, a loop) is
/// reported and ends instead of hanging CI. Dropped with its test. Inert
/// outside test harnesses (the benches share these helpers and run long).
pub struct Watchdog {
    done: Option<std::sync::mpsc::Sender<()>>,
}

impl Watchdog {
    pub fn start(what: String, limit: Duration) -> Watchdog {
        if !cfg!(test) {
            return Watchdog { done: None };
        }
        let (done, rx) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                // Straight to stderr: the harness's capture would swallow
                // eprintln! output, and the abort leaves it no time to print.
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "\n*** WATCHDOG: {what} still running after {limit:?}; aborting the test binary ***\n"
                );
                std::process::abort();
            }
        });
        Watchdog { done: Some(done) }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Some(d) = &self.done {
            let _ = d.send(());
        }
    }
}
