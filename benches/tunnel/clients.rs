//! The thousands of idle sessions, held by a child process of this binary
//! (`--role clients`) so they do not count against the coordinator's fds.

use crate::net::{echo_tagged, open, wait_closed, Route};
use crate::procs::kill;
use crate::OPEN_CONCURRENCY;
use anyhow::{bail, ensure, Context};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Runs as `--role clients`: holds many sessions for the coordinator.
/// Commands, one per line on stdin, each answered by one line on stdout:
/// - `open N CONC ROUTE...` (ROUTE: `jitgate PORT FP SECRET`, `haproxy PORT
///   FP`, `direct PORT`) opens N sessions, CONC at a time, each echoing once
///   (tag = its index), then idle: `opened OK FAILED MILLIS FIRST_ERROR`;
/// - `closes MILLIS` waits for all to be closed by the peer: `closes K OPEN`
///   followed by K lines `IDX MICROS`;
/// - `drop` closes them all: `dropped`.
pub fn clients_role() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut held: Option<Held> = None;
    let mut out = std::io::stdout().lock();
    for line in std::io::stdin().lines() {
        let line = line?;
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.first().copied() {
            Some("open") => {
                if let Some(mut h) = held.take() {
                    rt.block_on(h.tasks.shutdown());
                }
                let n: usize = w.get(1).context("n")?.parse()?;
                let conc: usize = w.get(2).context("conc")?.parse()?;
                let route = parse_route(&w[3..])?;
                let start = Instant::now();
                let (h, err) = rt.block_on(open_many(route, n, conc));
                let ok = h.open.load(Ordering::Acquire);
                let err = err.unwrap_or_else(|| "-".into()).replace(['\n', ' '], "_");
                writeln!(
                    out,
                    "opened {ok} {} {} {err}",
                    n - ok,
                    start.elapsed().as_millis()
                )?;
                held = Some(h);
            }
            Some("closes") => {
                let limit: u64 = w.get(1).context("millis")?.parse()?;
                let until = Instant::now() + Duration::from_millis(limit);
                let mut lines = Vec::new();
                if let Some(h) = &held {
                    while h.open.load(Ordering::Acquire) > 0 && Instant::now() < until {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    for (i, c) in h.closes.iter().enumerate() {
                        let t = c.load(Ordering::Acquire);
                        if h.established[i].load(Ordering::Acquire) && t > 0 {
                            lines.push(format!("{i} {t}"));
                        }
                    }
                }
                let open = held.as_ref().map_or(0, |h| h.open.load(Ordering::Acquire));
                writeln!(out, "closes {} {open}", lines.len())?;
                for l in lines {
                    writeln!(out, "{l}")?;
                }
            }
            Some("drop") => {
                if let Some(mut h) = held.take() {
                    rt.block_on(h.tasks.shutdown());
                }
                writeln!(out, "dropped")?;
            }
            Some("quit") | None => break,
            Some(other) => bail!("unknown command {other}"),
        }
        out.flush()?;
    }
    Ok(())
}

pub fn parse_route(w: &[&str]) -> anyhow::Result<Route> {
    let port: u16 = w.get(1).context("port")?.parse()?;
    let tls = |fp: Option<&&str>| -> anyhow::Result<Arc<rustls::ClientConfig>> {
        let fp = fp.context("fingerprint")?;
        Ok(Arc::new(jitgate::proxy::tcp::verify::client_config(
            None,
            Some(fp),
        )?))
    };
    Ok(match w.first().copied() {
        Some("direct") => Route::Direct { port },
        Some("haproxy") => Route::Haproxy {
            port,
            tls: tls(w.get(2))?,
        },
        Some("jitgate") => Route::Jitgate {
            port,
            tls: tls(w.get(2))?,
            secret: w.get(3).context("secret")?.to_string(),
        },
        _ => bail!("bad route {w:?}"),
    })
}

/// Sessions held open by the clients child.
pub struct Held {
    pub tasks: JoinSet<()>,
    pub closes: Arc<Vec<AtomicI64>>,
    pub established: Arc<Vec<AtomicBool>>,
    /// Established and not yet closed.
    pub open: Arc<AtomicUsize>,
}

pub async fn open_many(route: Route, n: usize, conc: usize) -> (Held, Option<String>) {
    let sem = Arc::new(Semaphore::new(conc));
    let closes: Arc<Vec<AtomicI64>> = Arc::new((0..n).map(|_| AtomicI64::new(0)).collect());
    let established: Arc<Vec<AtomicBool>> =
        Arc::new((0..n).map(|_| AtomicBool::new(false)).collect());
    let live = Arc::new(AtomicUsize::new(0));
    let first_err = Arc::new(Mutex::new(None::<String>));
    let mut tasks = JoinSet::new();
    for i in 0..n {
        let Ok(permit) = sem.clone().acquire_owned().await else {
            break;
        };
        let (route, closes, established, live, first_err) = (
            route.clone(),
            closes.clone(),
            established.clone(),
            live.clone(),
            first_err.clone(),
        );
        tasks.spawn(async move {
            let r = tokio::time::timeout(Duration::from_secs(30), async {
                let mut c = open(&route).await?;
                echo_tagged(&mut c, i as u32).await?;
                Ok::<_, anyhow::Error>(c)
            })
            .await;
            let mut c = match r {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => {
                    if let Ok(mut f) = first_err.lock() {
                        f.get_or_insert(format!("{e:#}"));
                    }
                    return;
                }
                Err(_) => {
                    if let Ok(mut f) = first_err.lock() {
                        f.get_or_insert("setup timed out".into());
                    }
                    return;
                }
            };
            established[i].store(true, Ordering::Release);
            live.fetch_add(1, Ordering::AcqRel);
            drop(permit);
            let t = wait_closed(&mut c).await;
            closes[i].store(t, Ordering::Release);
            live.fetch_sub(1, Ordering::AcqRel);
        });
    }
    // Every permit back: every session is established or has failed.
    let _ = sem.acquire_many(conc as u32).await;
    let err = first_err.lock().ok().and_then(|f| f.clone());
    (
        Held {
            tasks,
            closes,
            established,
            open: live,
        },
        err,
    )
}

/// The coordinator's handle on the clients child.
pub struct Clients {
    pub child: Child,
    pub stdin: ChildStdin,
    pub stdout: BufReader<ChildStdout>,
}

pub struct Opened {
    pub ok: usize,
    pub failed: usize,
    pub millis: u64,
    pub first_error: String,
}

impl Clients {
    pub fn spawn() -> anyhow::Result<Clients> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["--role", "clients"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child.stdin.take().context("child stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("child stdout")?);
        Ok(Clients {
            child,
            stdin,
            stdout,
        })
    }

    pub fn ask(&mut self, cmd: &str) -> anyhow::Result<String> {
        writeln!(self.stdin, "{cmd}")?;
        self.stdin.flush()?;
        self.line()
    }

    pub fn line(&mut self) -> anyhow::Result<String> {
        let mut l = String::new();
        ensure!(
            self.stdout.read_line(&mut l)? > 0,
            "the clients child exited"
        );
        Ok(l.trim_end().to_string())
    }

    pub fn open(&mut self, n: usize, route: &str) -> anyhow::Result<Opened> {
        let r = self.ask(&format!("open {n} {OPEN_CONCURRENCY} {route}"))?;
        let w: Vec<&str> = r.split_whitespace().collect();
        ensure!(
            w.first() == Some(&"opened") && w.len() == 5,
            "child said {r}"
        );
        Ok(Opened {
            ok: w[1].parse()?,
            failed: w[2].parse()?,
            millis: w[3].parse()?,
            first_error: w[4].to_string(),
        })
    }

    /// Close instants by session index, once all closed or `limit` passed.
    pub fn closes(&mut self, limit: Duration) -> anyhow::Result<(HashMap<u32, i64>, usize)> {
        let r = self.ask(&format!("closes {}", limit.as_millis()))?;
        let w: Vec<&str> = r.split_whitespace().collect();
        ensure!(
            w.first() == Some(&"closes") && w.len() == 3,
            "child said {r}"
        );
        let k: usize = w[1].parse()?;
        let mut m = HashMap::with_capacity(k);
        for _ in 0..k {
            let l = self.line()?;
            let (i, t) = l.split_once(' ').context("bad close line")?;
            m.insert(i.parse()?, t.parse()?);
        }
        Ok((m, w[2].parse()?))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn drop_all(&mut self) -> anyhow::Result<()> {
        let r = self.ask("drop")?;
        ensure!(r == "dropped", "child said {r}");
        Ok(())
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        kill(&mut self.child);
    }
}
