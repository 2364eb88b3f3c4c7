//! Properties over the public API, checked on generated inputs (proptest):
//! the PostgreSQL codec round-trips and its frame tracker does not depend on
//! how the byte stream is chunked; the tunnel handshake round-trips and
//! never panics; and no sequence of session-table operations admits a
//! session under an ended grant or lets one outlive it.

use jitgate::config::TargetKind;
use jitgate::proxy::postgres::codec::{self, FrameTracker, Initial, Severity};
use jitgate::proxy::tcp::handshake::{
    encode_hello, read_hello, read_reply, write_reply, Hello, Kind, Reply, Status, MAX_MESSAGE,
};
use jitgate::sessions::{
    Admission, AdmitError, EndCause, EndReason, SessionInfo, SessionObserver, SessionTable,
};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime")
}

// ---------------------------------------------------------------- codec

/// One backend message as the proxy builds it, with what decoding must give.
#[derive(Debug, Clone)]
enum PgMsg {
    Raw(u8, Vec<u8>),
    AuthOk,
    Sasl(Vec<String>),
    SaslContinue(Vec<u8>),
    SaslFinal(Vec<u8>),
    Param(String, String),
    KeyData(i32, [u8; 4]),
    Ready(u8),
    Negotiate(Vec<String>),
    Error(String, String, Option<String>),
    Notice(String, String),
}

fn cname() -> impl Strategy<Value = String> {
    // Strings the proxy sends NUL-terminated never hold a NUL.
    "[^\u{0}]{0,24}"
}

fn pg_msg() -> impl Strategy<Value = PgMsg> {
    let bytes = || proptest::collection::vec(any::<u8>(), 0..64);
    prop_oneof![
        (any::<u8>(), bytes()).prop_map(|(t, b)| PgMsg::Raw(t, b)),
        Just(PgMsg::AuthOk),
        proptest::collection::vec("[A-Z0-9-]{1,20}", 0..3).prop_map(PgMsg::Sasl),
        bytes().prop_map(PgMsg::SaslContinue),
        bytes().prop_map(PgMsg::SaslFinal),
        (cname(), cname()).prop_map(|(n, v)| PgMsg::Param(n, v)),
        (any::<i32>(), any::<[u8; 4]>()).prop_map(|(p, k)| PgMsg::KeyData(p, k)),
        prop_oneof![Just(b'I'), Just(b'T'), Just(b'E')].prop_map(PgMsg::Ready),
        proptest::collection::vec("_pq_\\.[a-z_]{1,16}", 0..3).prop_map(PgMsg::Negotiate),
        (
            "[0-9A-Z]{5}",
            any::<String>(),
            proptest::option::of(any::<String>())
        )
            .prop_map(|(c, m, h)| PgMsg::Error(c, m, h)),
        ("[0-9A-Z]{5}", any::<String>()).prop_map(|(c, m)| PgMsg::Notice(c, m)),
    ]
}

fn encode(m: &PgMsg) -> Vec<u8> {
    match m {
        PgMsg::Raw(t, b) => codec::message(*t, b),
        PgMsg::AuthOk => codec::auth_ok(),
        PgMsg::Sasl(ms) => codec::auth_sasl(&ms.iter().map(String::as_str).collect::<Vec<_>>()),
        PgMsg::SaslContinue(d) => codec::auth_sasl_continue(d),
        PgMsg::SaslFinal(d) => codec::auth_sasl_final(d),
        PgMsg::Param(n, v) => codec::parameter_status(n, v),
        PgMsg::KeyData(p, k) => codec::backend_key_data(*p, k),
        PgMsg::Ready(s) => codec::ready_for_query(*s),
        PgMsg::Negotiate(o) => codec::negotiate_protocol_version(o),
        PgMsg::Error(c, t, h) => codec::error_response(Severity::Error, c, t, h.as_deref()),
        PgMsg::Notice(c, t) => codec::notice_response(Severity::Notice, c, t),
    }
}

fn strip_nul(s: &str) -> String {
    s.chars().filter(|&c| c != '\0').collect()
}

/// Decodes one message's tag and body and checks them against what was encoded.
fn check_decoded(m: &PgMsg, tag: u8, body: &[u8]) {
    let auth = |code: i32, data: &[u8]| {
        assert_eq!(tag, b'R');
        assert_eq!(&body[..4], &code.to_be_bytes());
        assert_eq!(&body[4..], data);
    };
    match m {
        PgMsg::Raw(t, b) => {
            assert_eq!(tag, *t);
            assert_eq!(body, &b[..]);
        }
        PgMsg::AuthOk => auth(0, &[]),
        PgMsg::Sasl(ms) => {
            assert_eq!(tag, b'R');
            assert_eq!(&body[..4], &10i32.to_be_bytes());
            let mut rest = &body[4..];
            let mut got = Vec::new();
            loop {
                let (s, r) = codec::cstr(rest).expect("NUL-terminated mechanism");
                rest = r;
                if s.is_empty() {
                    break;
                }
                got.push(s.to_string());
            }
            assert!(rest.is_empty());
            assert_eq!(&got, ms);
        }
        PgMsg::SaslContinue(d) => auth(11, d),
        PgMsg::SaslFinal(d) => auth(12, d),
        PgMsg::Param(n, v) => {
            assert_eq!(tag, b'S');
            let (a, rest) = codec::cstr(body).expect("name");
            let (b, rest) = codec::cstr(rest).expect("value");
            assert_eq!((a, b), (n.as_str(), v.as_str()));
            assert!(rest.is_empty());
        }
        PgMsg::KeyData(p, k) => {
            assert_eq!(tag, b'K');
            assert_eq!(&body[..4], &p.to_be_bytes());
            assert_eq!(&body[4..], k);
        }
        PgMsg::Ready(s) => {
            assert_eq!(tag, b'Z');
            assert_eq!(body, &[*s]);
        }
        PgMsg::Negotiate(o) => {
            assert_eq!(tag, b'v');
            assert_eq!(&body[..4], &codec::PROTOCOL_3_0.to_be_bytes());
            assert_eq!(&body[4..8], &(o.len() as i32).to_be_bytes());
            let mut rest = &body[8..];
            for want in o {
                let (s, r) = codec::cstr(rest).expect("option");
                assert_eq!(s, want);
                rest = r;
            }
            assert!(rest.is_empty());
        }
        PgMsg::Error(c, t, h) => {
            assert_eq!(tag, b'E');
            let mut want = vec![
                (b'S', "ERROR".to_string()),
                (b'V', "ERROR".to_string()),
                (b'C', c.clone()),
                (b'M', strip_nul(t)),
            ];
            if let Some(h) = h {
                want.push((b'H', strip_nul(h)));
            }
            assert_eq!(codec::error_fields(body), want);
        }
        PgMsg::Notice(c, t) => {
            assert_eq!(tag, b'N');
            let want = vec![
                (b'S', "NOTICE".to_string()),
                (b'V', "NOTICE".to_string()),
                (b'C', c.clone()),
                (b'M', strip_nul(t)),
            ];
            assert_eq!(codec::error_fields(body), want);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Every encoder's output reads back as one message with the same content.
    #[test]
    fn pg_messages_round_trip(msgs in proptest::collection::vec(pg_msg(), 1..8)) {
        let stream: Vec<u8> = msgs.iter().flat_map(encode).collect();
        let rt = rt();
        let mut r = stream.as_slice();
        for m in &msgs {
            let (tag, body) = rt
                .block_on(codec::read_message(&mut r, 1 << 20))
                .expect("read back");
            check_decoded(m, tag, &body);
        }
        prop_assert!(r.is_empty());
    }

    /// The tracker reports the same tags, and each chunk's first boundary,
    /// wherever the stream is cut.
    #[test]
    fn frame_tracker_is_chunking_independent(
        msgs in proptest::collection::vec(pg_msg(), 1..8),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let encoded: Vec<Vec<u8>> = msgs.iter().map(encode).collect();
        let stream: Vec<u8> = encoded.concat();
        let mut boundaries = Vec::new();
        let mut at = 0;
        for e in &encoded {
            at += e.len();
            boundaries.push(at);
        }
        let mut points: BTreeSet<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        points.insert(0);
        points.insert(stream.len());
        let points: Vec<usize> = points.into_iter().collect();

        let mut t = FrameTracker::default();
        let mut tags = Vec::new();
        for w in points.windows(2) {
            let (from, to) = (w[0], w[1]);
            let first = t.scan(&stream[from..to], |tag| tags.push(tag)).expect("valid stream");
            let want = boundaries.iter().find(|&&b| b > from && b <= to).map(|b| b - from);
            prop_assert_eq!(first, want);
        }
        prop_assert!(t.at_boundary());
        let want_tags: Vec<u8> = encoded.iter().map(|e| e[0]).collect();
        prop_assert_eq!(tags, want_tags);
    }

    /// A StartupMessage built from distinct non-empty keys parses back to them.
    #[test]
    fn startup_parameters_round_trip(
        params in proptest::collection::btree_map("[a-z_]{1,16}", cname(), 0..6),
        minor in 0i32..4,
    ) {
        let mut body = (codec::PROTOCOL_3_0 | minor).to_be_bytes().to_vec();
        for (k, v) in &params {
            body.extend_from_slice(k.as_bytes());
            body.push(0);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
        body.push(0);
        let want: Vec<(String, String)> = params.into_iter().collect();
        prop_assert_eq!(
            codec::parse_initial(&body).expect("startup"),
            Initial::Startup { minor, params: want }
        );
    }
}

// ------------------------------------------------------------ handshake

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![Just(Kind::Connect), Just(Kind::Status)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn hello_round_trips(
        kind in kind(),
        target in "[a-z0-9][a-z0-9._-]{0,62}",
        secret in "[ -~]{0,128}",
        session_id in "[a-z0-9_]{0,64}",
    ) {
        let h = Hello { kind, target, secret, session_id };
        let bytes = encode_hello(&h);
        let got = rt().block_on(read_hello(&mut bytes.as_slice())).expect("read back");
        prop_assert_eq!(got, h);
    }

    /// Messages longer than the limit are cut, never rejected or split mid-read.
    #[test]
    fn reply_round_trips(status in 0u8..=10, message in any::<String>(), session_id in "[a-z0-9_]{0,64}") {
        let reply = Reply { status: Status::from_u8(status).expect("status"), message, session_id };
        let rt = rt();
        let mut buf = Vec::new();
        rt.block_on(write_reply(&mut buf, &reply)).expect("write");
        let got = rt.block_on(read_reply(&mut buf.as_slice())).expect("read back");
        let bytes = reply.message.as_bytes();
        let want = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_MESSAGE)]).into_owned();
        prop_assert_eq!(got.status, reply.status);
        prop_assert_eq!(got.message, want);
        prop_assert_eq!(got.session_id, reply.session_id);
    }

    /// Arbitrary bytes give an error or a value; a value re-encodes to the
    /// bytes it was read from.
    #[test]
    fn hello_never_panics(head in prop_oneof![Just(b"JITG\x01".to_vec()), Just(Vec::new())],
                          data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let input = [head, data].concat();
        let rt = rt();
        if let Ok(h) = rt.block_on(read_hello(&mut input.as_slice())) {
            let again = encode_hello(&h);
            prop_assert!(input.starts_with(&again));
        }
        let _ = rt.block_on(read_reply(&mut input.as_slice()));
    }
}

// -------------------------------------------------------- session table

#[derive(Debug, Clone)]
enum Op {
    Admit { grant: usize, max: Option<u32> },
    Start(prop::sample::Index),
    DropGuard(prop::sample::Index),
    EndSession(prop::sample::Index),
    EndGrant(usize),
}

const GRANTS: usize = 3;

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..GRANTS, proptest::option::of(1u32..4)).prop_map(|(grant, max)| Op::Admit { grant, max }),
        2 => any::<prop::sample::Index>().prop_map(Op::Start),
        2 => any::<prop::sample::Index>().prop_map(Op::DropGuard),
        1 => any::<prop::sample::Index>().prop_map(Op::EndSession),
        1 => (0..GRANTS).prop_map(Op::EndGrant),
    ]
}

#[derive(Default)]
struct Counts {
    started: AtomicUsize,
    ended: AtomicUsize,
}

impl SessionObserver for Counts {
    fn started(&self, _: &SessionInfo) {
        self.started.fetch_add(1, Ordering::SeqCst);
    }
    fn ended(&self, _: &SessionInfo, _: &EndCause) {
        self.ended.fetch_add(1, Ordering::SeqCst);
    }
}

enum Cmd {
    Start,
    Drop,
}

/// A session as a front end holds it: a task owning the guard that drops
/// it when told to or when the session is cancelled.
struct Held {
    id: String,
    grant: usize,
    started: bool,
    cmd: tokio::sync::mpsc::UnboundedSender<Cmd>,
    task: tokio::task::JoinHandle<()>,
}

fn admission(grant: usize, max: Option<u32>) -> Admission {
    Admission {
        grant_id: format!("gr_{grant}"),
        user: "alice".into(),
        target: "cache".into(),
        kind: TargetKind::Tcp,
        client_addr: "127.0.0.1:1".into(),
        granted_at_ms: 0,
        expires_at_ms: i64::MAX / 2,
        max_sessions: max,
        warnings: None,
    }
}

async fn run_ops(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let table = SessionTable::new("prop");
    let counts = Arc::new(Counts::default());
    table.set_observer(counts.clone());
    let mut held: Vec<Held> = Vec::new();
    let mut ended: BTreeSet<usize> = BTreeSet::new();
    let mut admitted = 0usize;
    let mut confirmed = 0usize;

    for op in ops {
        match op {
            Op::Admit { grant, max } => {
                let live = held.iter().filter(|h| h.grant == grant).count();
                match table.admit(admission(grant, max)) {
                    Ok(guard) => {
                        prop_assert!(!ended.contains(&grant), "admitted under an ended grant");
                        prop_assert!(max.is_none_or(|m| live < m as usize), "over max_sessions");
                        admitted += 1;
                        let id = guard.info().id.clone();
                        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                        let task = tokio::spawn(async move {
                            loop {
                                tokio::select! {
                                    c = rx.recv() => match c {
                                        Some(Cmd::Start) => guard.start(None),
                                        Some(Cmd::Drop) | None => break,
                                    },
                                    _ = guard.token().cancelled() => break,
                                }
                            }
                            drop(guard);
                        });
                        held.push(Held {
                            id,
                            grant,
                            started: false,
                            cmd: tx,
                            task,
                        });
                    }
                    Err(AdmitError::GrantEnded(_)) => prop_assert!(ended.contains(&grant)),
                    Err(AdmitError::MaxSessions(m)) => {
                        prop_assert!(!ended.contains(&grant));
                        prop_assert_eq!(Some(m), max);
                        prop_assert!(live >= m as usize);
                    }
                }
            }
            Op::Start(i) => {
                if !held.is_empty() {
                    let n = held.len();
                    let h = &mut held[i.index(n)];
                    // A front end starts a session once.
                    if !h.started {
                        h.started = true;
                        let _ = h.cmd.send(Cmd::Start);
                    }
                    tokio::task::yield_now().await;
                }
            }
            Op::DropGuard(i) => {
                if !held.is_empty() {
                    let h = held.remove(i.index(held.len()));
                    let _ = h.cmd.send(Cmd::Drop);
                    h.task.await.expect("session task");
                }
            }
            Op::EndSession(i) => {
                if !held.is_empty() {
                    let h = held.remove(i.index(held.len()));
                    let n = table
                        .end_session(&h.id, EndCause::new(EndReason::Terminated))
                        .await;
                    prop_assert_eq!(n, Some(1));
                    confirmed += 1;
                    h.task.await.expect("session task");
                }
            }
            Op::EndGrant(g) => {
                let live = held.iter().filter(|h| h.grant == g).count();
                let n = table
                    .end_grant(&format!("gr_{g}"), EndCause::new(EndReason::Revoked))
                    .await;
                prop_assert_eq!(n, live, "confirmed count is the grant's live sessions");
                confirmed += n;
                ended.insert(g);
                let (gone, kept): (Vec<Held>, Vec<Held>) =
                    held.into_iter().partition(|h| h.grant == g);
                held = kept;
                for h in gone {
                    h.task.await.expect("session task");
                }
            }
        }
        // After every step: the table holds exactly the live sessions, and
        // none of them belongs to an ended grant.
        prop_assert_eq!(table.len(), held.len());
        for id in table.grant_ids() {
            let g: usize = id.trim_start_matches("gr_").parse().expect("grant id");
            prop_assert!(!ended.contains(&g), "a session outlived its grant {}", id);
        }
        let by_grant: BTreeMap<String, usize> = held.iter().fold(BTreeMap::new(), |mut m, h| {
            *m.entry(format!("gr_{}", h.grant)).or_default() += 1;
            m
        });
        prop_assert_eq!(
            table.grant_ids(),
            by_grant
                .keys()
                .cloned()
                .collect::<std::collections::HashSet<_>>()
        );
        prop_assert!(confirmed <= admitted);
        prop_assert!(counts.ended.load(Ordering::SeqCst) <= counts.started.load(Ordering::SeqCst));
    }
    for h in held {
        let _ = h.cmd.send(Cmd::Drop);
        h.task.await.expect("session task");
    }
    prop_assert!(table.is_empty());
    // Every started session was reported ended exactly once.
    prop_assert_eq!(
        counts.ended.load(Ordering::SeqCst),
        counts.started.load(Ordering::SeqCst)
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn sessions_never_outlive_their_grant(ops in proptest::collection::vec(op(), 1..40)) {
        rt().block_on(run_ops(ops))?;
    }
}
