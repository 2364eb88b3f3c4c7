//! What a backend is doing, as the server itself reports it: for tests that
//! must act on a query only once it runs (a CancelRequest that reaches an
//! idle backend cancels nothing, so a cancel sent after a fixed pause can
//! arrive before the query on a loaded machine and the query runs on).

use super::pg::PgCluster;
use super::tunnel::wait_for;

/// Waits (bounded) until backend `pid` runs `query` (state `active`).
pub fn wait_active(cluster: &PgCluster, pid: i32, query: &str) {
    let sql = format!("SELECT state || '|' || query FROM pg_stat_activity WHERE pid = {pid}");
    let want = format!("active|{query}");
    wait_for(&format!("backend {pid} to run {query:?}"), || {
        cluster.admin_sql(&sql).trim() == want
    });
}
