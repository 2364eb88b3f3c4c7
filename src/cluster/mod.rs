//! Several instances on one PostgreSQL store (SPEC "Several instances").
//!
//! Each instance owns the sessions connected to it and publishes them as rows
//! (`rows`), heartbeats and re-checks the store as a backstop (`upkeep`), and
//! listens for requests to close sessions (`listen`). A revoke, lock or
//! terminate made here is sent to every live peer, and the API call waits
//! for each peer's count of sessions it closed, up to `CONFIRM_BOUND`.
//!
//! With SQLite there is one instance and none of this runs.

pub mod listen;
pub mod message;
pub mod rows;
pub mod upkeep;

use crate::sessions::SessionTable;
use crate::store::{Store, StoreError};
use dashmap::DashMap;
use message::{Envelope, Op, CHANNEL};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How often an instance heartbeats and re-checks the store.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// An instance silent for this long is dead; its rows are reaped.
pub const DEAD_AFTER: Duration = Duration::from_secs(15);
/// How long a revoke, lock or terminate waits for peers to confirm.
pub const CONFIRM_BOUND: Duration = Duration::from_secs(5);

pub struct Cluster {
    pub(crate) store: Store,
    pub(crate) sessions: SessionTable,
    pub(crate) me: String,
    pub(crate) incarnation: String,
    url: String,
    acks: DashMap<String, mpsc::UnboundedSender<(String, usize)>>,
    pub(crate) rows: rows::RowQueue,
}

/// What peers confirmed for one request.
#[derive(Debug, Default, Clone)]
pub struct Confirmed {
    /// Sessions peers reported closed.
    pub closed: usize,
    /// Peers that did not answer within `CONFIRM_BOUND`.
    pub unconfirmed: Vec<String>,
}

/// A name whose row heartbeated within `DEAD_AFTER` may belong to a live
/// instance, or to this one's predecessor that crashed moments ago. A live
/// holder heartbeats every `HEARTBEAT`, so watching for a few of them tells
/// the two apart: taking over a live peer's name would make the two reap
/// each other's rows and hide each other's sessions.
async fn refuse_if_name_is_live(store: &Store, me: &str) -> Result<(), StoreError> {
    let Some((_, seen)) = store.instance_heartbeat(me).await? else {
        return Ok(());
    };
    if crate::clock::now_ms() - seen >= DEAD_AFTER.as_millis() as i64 {
        return Ok(());
    }
    tokio::time::sleep(HEARTBEAT * 3).await;
    match store.instance_heartbeat(me).await? {
        Some((_, later)) if later > seen => Err(StoreError::Conflict(format!(
            "the instance name {me:?} is held by another live jitgate instance on this store; give each instance its own [server] instance name (left unset, it is the host name with the admin port)"
        ))),
        _ => Ok(()),
    }
}

/// Who must answer a request.
pub enum Expect {
    /// Every instance with a fresh heartbeat.
    Peers,
    /// The one instance that owns a session.
    Owner(String),
}

impl Cluster {
    /// Registers this instance and starts its listener, row writer and
    /// upkeep tasks; they stop when `shutdown` is cancelled.
    pub async fn start(
        store: Store,
        sessions: SessionTable,
        url: &str,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Result<Arc<Cluster>, StoreError> {
        let me = sessions.instance().to_string();
        let incarnation = crate::ids::session_id();
        refuse_if_name_is_live(&store, &me).await?;
        let now = crate::clock::now_ms();
        store.register_instance(&me, &incarnation, now).await?;
        let rows = rows::RowQueue::start(store.clone(), me.clone());
        let c = Arc::new(Cluster {
            store,
            sessions,
            me,
            incarnation,
            url: url.to_string(),
            acks: DashMap::new(),
            rows,
        });
        tokio::spawn(listen::run(c.clone(), shutdown.clone()));
        tokio::spawn(upkeep::run(c.clone(), shutdown));
        tracing::info!(instance = %c.me, "joined the instances sharing the store");
        Ok(c)
    }

    pub fn instance(&self) -> &str {
        &self.me
    }

    /// Sends `op` to the peers and waits for the expected acknowledgements.
    /// A store error is reported as every expected peer unconfirmed: the
    /// caller has already closed what it could locally.
    pub async fn request(&self, op: Op, expect: Expect) -> Confirmed {
        let req = crate::ids::session_id();
        let (tx, mut rx) = mpsc::unbounded_channel();
        self.acks.insert(req.clone(), tx);
        let env = Envelope {
            from: self.me.clone(),
            req: req.clone(),
            op,
        };
        let since = crate::clock::now_ms() - DEAD_AFTER.as_millis() as i64;
        let peers = async {
            match &expect {
                Expect::Peers => self.store.live_peers(&self.me, since).await,
                Expect::Owner(o) => Ok(vec![o.clone()]),
            }
        };
        let payload = env.encode();
        let sent = self.store.notify(CHANNEL, &payload);
        let (peers, sent) = tokio::join!(peers, sent);
        let mut waiting: HashSet<String> = match (&peers, &sent) {
            (Ok(p), Ok(())) => p.iter().cloned().collect(),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "cannot reach peers through the store");
                self.acks.remove(&req);
                return Confirmed {
                    closed: 0,
                    unconfirmed: match peers {
                        Ok(p) => p,
                        Err(_) => vec!["(unknown: store unavailable)".into()],
                    },
                };
            }
        };
        let mut out = Confirmed::default();
        let until = tokio::time::Instant::now() + CONFIRM_BOUND;
        while !waiting.is_empty() {
            match tokio::time::timeout_at(until, rx.recv()).await {
                Ok(Some((from, n))) => {
                    if waiting.remove(&from) {
                        out.closed += n;
                    }
                }
                _ => break,
            }
        }
        self.acks.remove(&req);
        out.unconfirmed = waiting.into_iter().collect();
        out.unconfirmed.sort();
        if !out.unconfirmed.is_empty() {
            tracing::warn!(peers = ?out.unconfirmed, "peers did not confirm closing sessions in time; the re-check on each peer is the backstop");
        }
        out
    }

    /// Routes a peer's acknowledgement to the request waiting for it.
    fn acknowledged(&self, req: &str, from: &str, closed: usize) {
        if let Some(tx) = self.acks.get(req) {
            let _ = tx.send((from.to_string(), closed));
        }
    }

    /// Deregisters at a clean shutdown, after the sessions are closed.
    pub async fn leave(&self) {
        self.rows.flush(Duration::from_secs(2)).await;
        if let Err(e) = self
            .store
            .deregister_instance(&self.me, &self.incarnation)
            .await
        {
            tracing::warn!(error = %e, "could not deregister; peers will reap this instance's rows");
        }
    }
}

impl Cluster {
    /// The peers' live sessions, as the API lists them.
    pub async fn remote_snapshots(
        &self,
    ) -> Result<Vec<crate::sessions::SessionSnapshot>, StoreError> {
        let now = crate::clock::now_ms();
        Ok(self
            .store
            .remote_sessions(&self.me)
            .await?
            .into_iter()
            .map(|r| crate::sessions::SessionSnapshot {
                taken_at_ms: now,
                granted_at_ms: r.granted_at_ms,
                started_at_ms: r.started_at_ms,
                expires_at_ms: r.expires_at_ms,
                last_activity_ms: r.last_activity_ms,
                bytes_in: r.bytes_in.max(0) as u64,
                bytes_out: r.bytes_out.max(0) as u64,
                id: r.id,
                grant_id: r.grant_id,
                user: r.user,
                target: r.target,
                kind: r.kind,
                client_addr: r.client_addr,
                instance: r.instance,
            })
            .collect())
    }
}
