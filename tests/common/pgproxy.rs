//! The PostgreSQL front end under test: a private cluster with a target
//! role, a daemon with the PostgreSQL listener, and the clients (psql,
//! tokio-postgres) pointed at the proxy.

use super::daemon::{Daemon, BOB, WARN_AND_FEW_POLICIES};
use super::free_port;
use super::pg::PgCluster;
use super::wait::{OutputWithin, HANG};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The TLS stream type tokio-postgres-rustls gives (its name is private).
pub type TlsStream =
    <tokio_postgres_rustls::MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<
        tokio_postgres::Socket,
    >>::Stream;

/// The target role's password, handed to the daemon through its environment.
pub const ROLE_PASSWORD: &str = "jit-admin-Secret-42";
pub const PASSWORD_ENV: &str = "JITGATE_TEST_PG_PASSWORD";

pub struct PgProxy {
    pub cluster: &'static PgCluster,
    pub d: Daemon,
    pub port: u16,
    /// This proxy's target role and database on the shared cluster: a role
    /// of its own, so a test that alters it (a connection limit) or counts
    /// its backends sees no other test's.
    pub role: String,
    pub db: String,
}

impl PgProxy {
    /// None when PostgreSQL is missing (the skip is reported by PgCluster).
    pub fn start() -> Option<PgProxy> {
        Self::start_with(false)
    }

    /// `allow_plaintext` opens the listener to clients without TLS (sqlx
    /// here is built without a TLS backend).
    pub fn start_with(allow_plaintext: bool) -> Option<PgProxy> {
        Self::start_more(allow_plaintext, "")
    }

    /// `start_with` with `more` appended to the config (a `[recording]`).
    pub fn start_more(allow_plaintext: bool, more: &str) -> Option<PgProxy> {
        let cluster = PgCluster::shared()?;
        Some(Self::on(
            cluster,
            allow_plaintext,
            r#"tls = "prefer""#,
            more,
        ))
    }

    /// A proxy in front of `cluster`, whose `auto-db` target reaches it with
    /// `auto_tls` (the upstream table's TLS keys, as TOML).
    pub fn on(
        cluster: &'static PgCluster,
        allow_plaintext: bool,
        auto_tls: &str,
        more: &str,
    ) -> PgProxy {
        static NEXT: AtomicUsize = AtomicUsize::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let (role, db) = (format!("jit_admin_{n}"), format!("app_{n}"));
        cluster.admin_sql(&format!(
            "CREATE ROLE {role} LOGIN PASSWORD '{ROLE_PASSWORD}'"
        ));
        cluster.admin_sql(&format!("CREATE DATABASE {db} OWNER {role}"));
        // Set before the daemon starts; every test uses the same value.
        std::env::set_var(PASSWORD_ENV, ROLE_PASSWORD);
        let port = free_port();
        let target = |name: &str, tls: &str| {
            format!(
                "\n[[targets]]\nname = \"{name}\"\nkind = \"postgres\"\naddress = \"127.0.0.1:{}\"\nupstream = {{ user = \"{role}\", password_env = \"{PASSWORD_ENV}\", {tls} }}\n",
                cluster.port
            )
        };
        let mut extra = format!(
            "\n[listeners.postgres]\nlisten = \"127.0.0.1:{port}\"\nallow_plaintext = {allow_plaintext}\n"
        );
        extra += &target("auto-db", auto_tls);
        extra += &target("warn-db", r#"tls = "disable""#);
        extra += &target("few-db", r#"tls = "disable""#);
        extra += WARN_AND_FEW_POLICIES;
        extra += more;
        let d = Daemon::start_with(None, &extra);
        PgProxy {
            cluster,
            d,
            port,
            role,
            db,
        }
    }

    /// An active grant and its connect secret.
    pub fn grant(&self, token: &str, target: &str, duration: &str) -> (String, String) {
        self.d.grant_with_secret(token, target, duration)
    }

    pub fn cert(&self) -> std::path::PathBuf {
        self.d.dir.join("data").join("postgres-cert.pem")
    }

    /// libpq connection string through the proxy.
    pub fn conninfo(&self, user_at_target: &str, extra: &str) -> String {
        format!(
            "host=localhost port={} user={user_at_target} dbname={} sslmode=verify-full sslrootcert={} {extra}",
            self.port,
            self.db,
            self.cert().display()
        )
    }

    pub fn psql_command(&self, conninfo: &str, secret: &str) -> Command {
        let mut c = Command::new("psql");
        c.arg(conninfo)
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .env("PGPASSWORD", secret)
            .env("PGCONNECT_TIMEOUT", "20");
        c
    }

    /// Runs one command through the proxy with psql.
    pub fn psql(&self, user_at_target: &str, secret: &str, sql: &str) -> Output {
        self.psql_command(&self.conninfo(user_at_target, ""), secret)
            .args(["-c", sql])
            .output_within(HANG)
    }

    /// tokio-postgres through the proxy, verifying the proxy's certificate
    /// and requiring SCRAM channel binding.
    pub async fn tokio_postgres(
        &self,
        user_at_target: &str,
        secret: &str,
    ) -> Result<
        (
            tokio_postgres::Client,
            tokio_postgres::Connection<tokio_postgres::Socket, TlsStream>,
        ),
        tokio_postgres::Error,
    > {
        let mut cfg = tokio_postgres::Config::new();
        cfg.host("localhost")
            .port(self.port)
            .user(user_at_target)
            .password(secret)
            .dbname(&self.db)
            .ssl_mode(tokio_postgres::config::SslMode::Require)
            .channel_binding(tokio_postgres::config::ChannelBinding::Require);
        cfg.connect(self.tls()).await
    }

    pub fn tls(&self) -> tokio_postgres_rustls::MakeRustlsConnect {
        let pem = std::fs::read(self.cert()).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pemfile::certs(&mut pem.as_slice()) {
            roots.add(c.unwrap()).unwrap();
        }
        let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        tokio_postgres_rustls::MakeRustlsConnect::new(cfg)
    }

    /// Backends of jitgate sessions, seen by the superuser on the target.
    pub fn backends(&self) -> Vec<String> {
        let out = self.cluster.admin_sql(
            &format!("SELECT pid || '|' || application_name || '|' || state || '|' || query FROM pg_stat_activity WHERE application_name LIKE 'jitgate:%' AND datname = '{}'", self.db),
        );
        out.lines()
            .map(|l| l.to_string())
            .filter(|l| !l.is_empty())
            .collect()
    }
}

/// bob's default grant on auto-db, for tests that need just one.
pub fn bob_grant(p: &PgProxy) -> (String, String) {
    p.grant(BOB, "auto-db", "5m")
}

pub fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

pub fn free() -> u16 {
    free_port()
}
