//! The Prometheus registry of SPEC ("Metrics"). One `Metrics` per daemon,
//! shared by reference; label values come from closed sets (kinds, reasons,
//! configured targets and routes), never from user input, so cardinality is
//! bounded.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    pub registry: Registry,
    pub sessions_active: IntGaugeVec,
    pub sessions_started: IntCounterVec,
    pub sessions_ended: IntCounterVec,
    pub connections_rejected: IntCounterVec,
    pub termination_seconds: HistogramVec,
    pub bytes: IntCounterVec,
    pub grants_active: IntGauge,
    pub requests_pending: IntGauge,
    pub requests: IntCounterVec,
    pub admin_requests: IntCounterVec,
    pub config_reloads: IntCounterVec,
    pub build_info: IntGaugeVec,
    pub request_approve_seconds: Histogram,
    /// Webhook attempts by result: delivered, retried, dropped (given up).
    pub notifications: IntCounterVec,
    /// Admin API requests refused before routing for want of a valid token;
    /// kept out of admin_requests_total, whose `route` label names routes.
    pub admin_unauthenticated: IntCounterVec,
    /// Sign-ins through the IdP by result: ok, denied (refused: bad state,
    /// a name the pattern refuses, a locked user, a replayed code), error
    /// (the IdP or the store failed).
    pub signins: IntCounterVec,
    /// Extensions applied (approved, or at once under a policy that needs
    /// no approval).
    pub grants_extended: IntCounter,
    /// Break-glass grants waiting for an approver's verdict (read from the
    /// store, so every instance reports the shared figure).
    pub break_glass_unreviewed: IntGauge,
    /// Bytes written to session recordings, by kind (ssh, postgres).
    pub recording_bytes: IntCounterVec,
    /// Recordings that could not be written, by kind.
    pub recording_failures: IntCounterVec,
}

fn must<T>(r: prometheus::Result<T>) -> T {
    // Registration only fails for duplicate or malformed names, which are
    // constants here: a failure is a programming error caught by every test.
    r.unwrap_or_else(|e| panic!("metric definition error: {e}"))
}

impl Metrics {
    pub fn new() -> Self {
        let r = Registry::new();
        let gv = |name: &str, help: &str, labels: &[&str]| {
            let m = must(IntGaugeVec::new(Opts::new(name, help), labels));
            must(r.register(Box::new(m.clone())));
            m
        };
        let cv = |name: &str, help: &str, labels: &[&str]| {
            let m = must(IntCounterVec::new(Opts::new(name, help), labels));
            must(r.register(Box::new(m.clone())));
            m
        };
        let c = |name: &str, help: &str| {
            let m = must(IntCounter::new(name, help));
            must(r.register(Box::new(m.clone())));
            m
        };
        let g = |name: &str, help: &str| {
            let m = must(IntGauge::new(name, help));
            must(r.register(Box::new(m.clone())));
            m
        };
        // Open file descriptors, resident memory, CPU seconds, start time
        // (the process_* families), read from /proc on each scrape.
        #[cfg(target_os = "linux")]
        must(r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        )));
        let termination_seconds = must(HistogramVec::new(
            HistogramOpts::new(
                "jitgate_termination_seconds",
                "Seconds from a grant's end (the revoke, terminate or lock call, or the expiry instant) to both sockets of a session closed, by cause",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5, 5.0,
            ]),
            &["cause"],
        ));
        must(r.register(Box::new(termination_seconds.clone())));
        let request_approve_seconds = must(Histogram::with_opts(
            HistogramOpts::new(
                "jitgate_store_write_seconds",
                "Seconds taken by the store transaction that records a new request or an approval",
            )
            .buckets(prometheus::exponential_buckets(0.0005, 2.0, 14).unwrap_or_default()),
        ));
        must(r.register(Box::new(request_approve_seconds.clone())));
        let m = Metrics {
            sessions_active: gv(
                "jitgate_sessions_active",
                "Sessions relaying now, by kind (ssh, postgres, tcp) and target",
                &["kind", "target"],
            ),
            sessions_started: cv(
                "jitgate_sessions_started_total",
                "Sessions admitted and relaying, by kind and target",
                &["kind", "target"],
            ),
            sessions_ended: cv(
                "jitgate_sessions_ended_total",
                "Sessions ended, by kind and reason (client_closed, upstream_closed, expired, revoked, terminated, idle, locked, policy_changed, shutdown, error)",
                &["kind", "reason"],
            ),
            connections_rejected: cv(
                "jitgate_connections_rejected_total",
                "Client connections refused before any byte was relayed, by kind and reason",
                &["kind", "reason"],
            ),
            termination_seconds,
            bytes: cv(
                "jitgate_bytes_total",
                "Payload bytes relayed, added when a session ends; direction in = client to target, out = target to client",
                &["kind", "direction"],
            ),
            grants_active: g(
                "jitgate_grants_active",
                "Grants in force now (approved, neither expired nor revoked)",
            ),
            requests_pending: g(
                "jitgate_requests_pending",
                "Access requests waiting for approval",
            ),
            requests: cv(
                "jitgate_requests_total",
                "Access requests closed, by outcome (approved, denied, cancelled, expired, rejected)",
                &["outcome"],
            ),
            admin_requests: cv(
                "jitgate_admin_requests_total",
                "Admin API requests answered, by route pattern and HTTP status (requests without a valid token are in jitgate_admin_unauthenticated_total)",
                &["route", "status"],
            ),
            signins: cv(
                "jitgate_signins_total",
                "Sign-ins through the OpenID provider, by result (ok, denied, error)",
                &["result"],
            ),
            config_reloads: cv(
                "jitgate_config_reloads_total",
                "Config reloads (SIGHUP or POST /v1/admin/reload), by result (ok, error)",
                &["result"],
            ),
            build_info: gv(
                "jitgate_build_info",
                "Always 1; the version label is this build's",
                &["version"],
            ),
            request_approve_seconds,
            grants_extended: c(
                "jitgate_grants_extended_total",
                "Grant extensions applied (the grant's end moved out)",
            ),
            break_glass_unreviewed: g(
                "jitgate_break_glass_unreviewed",
                "Break-glass grants whose review is still pending",
            ),
            notifications: cv(
                "jitgate_notifications_total",
                "Webhook delivery attempts by result (delivered, retried, dropped)",
                &["result"],
            ),
            admin_unauthenticated: cv(
                "jitgate_admin_unauthenticated_total",
                "Admin API requests refused with 401, by reason (missing_token, bad_token)",
                &["reason"],
            ),
            recording_bytes: cv(
                "jitgate_recording_bytes_total",
                "Bytes written to session recordings, by kind (ssh, postgres)",
                &["kind"],
            ),
            recording_failures: cv(
                "jitgate_recording_failures_total",
                "Session recordings that could not be written (queue full, disk error), by kind",
                &["kind"],
            ),
            registry: r,
        };
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        // Present from the start, so an alert on `dropped` sees a zero first.
        for result in ["delivered", "retried", "dropped"] {
            m.notifications.with_label_values(&[result]);
        }
        for result in ["ok", "denied", "error"] {
            m.signins.with_label_values(&[result]);
        }
        for kind in ["ssh", "postgres"] {
            m.recording_bytes.with_label_values(&[kind]);
            m.recording_failures.with_label_values(&[kind]);
        }
        for reason in ["missing_token", "bad_token"] {
            m.admin_unauthenticated.with_label_values(&[reason]);
        }
        m
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
