#!/usr/bin/env python3
"""Termination latency through jitgate's PostgreSQL listener (issue 5).

Called by benches/pg_compare.sh, which has started postgres and jitgate.
Each trial: a fresh auto-approved grant; `psql -c "SELECT pg_sleep(600)"`
through the proxy; once that query runs on the target, an admin revokes the
grant. From just before the revoke call it measures

  fatal  psql exits with the FATAL on its stderr (the farewell delivered),
  gone   the backend has left pg_stat_activity on the target,
  api    the revoke call itself (it returns after both sockets are closed).

"gone" is timed inside postgres: a superuser connection made directly to the
target runs a plpgsql loop that checks pg_stat_activity every 5 ms and
returns clock_timestamp() when no jitgate backend is left, so no process is
spawned per poll. Both clocks are this machine's wall clock.

Standard library only. Prints one line per trial, then a summary.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

WAITER_APP = "jitgate-bench-waiter"

WAIT_FN = """
CREATE OR REPLACE FUNCTION pg_temp.wait_gone(target int) RETURNS float8
LANGUAGE plpgsql AS $$
BEGIN
  LOOP
    PERFORM pg_stat_clear_snapshot();
    IF NOT EXISTS (SELECT 1 FROM pg_stat_activity
                   WHERE application_name LIKE 'jitgate:%' OR pid = target) THEN
      RETURN extract(epoch FROM clock_timestamp());
    END IF;
    PERFORM pg_sleep(0.005);
  END LOOP;
END $$;
"""


def api(args, method, path, token, body=None):
    data = json.dumps(body).encode() if body is not None else b""
    req = urllib.request.Request(
        f"http://127.0.0.1:{args.admin_port}{path}",
        data=data if method == "POST" else None,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


def admin_sql(args, sql, app="jitgate-bench"):
    env = dict(os.environ, PGPASSWORD=args.pg_password, PGAPPNAME=app)
    out = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", str(args.pg_port), "-U", "postgres",
         "-d", "postgres", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql],
        env=env, capture_output=True, text=True, check=True,
    )
    return out.stdout.strip()


def wait_for(pred, what, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    sys.exit(f"termination: timed out waiting for {what}")


def trial(args, n):
    req = api(args, "POST", "/v1/requests", args.token,
              {"target": args.target, "duration": "10m", "reason": f"bench termination {n}"})
    gid = req["grant"]["id"]
    secret = api(args, "POST", f"/v1/grants/{gid}/secret", args.token)["secret"]

    conninfo = (f"host=localhost port={args.proxy_port} user={args.user}@{args.target} "
                f"dbname={args.dbname} sslmode=require")
    sleeper = subprocess.Popen(
        ["psql", conninfo, "-X", "-A", "-t", "-c", "SELECT pg_sleep(600)"],
        env=dict(os.environ, PGPASSWORD=secret, PGCONNECT_TIMEOUT="20"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    exited = {}

    def reap():
        out, err = sleeper.communicate()
        exited["at"] = time.time()
        exited["stderr"] = err

    reaper = threading.Thread(target=reap)
    reaper.start()

    pid = wait_for(
        lambda: admin_sql(args, "SELECT pid FROM pg_stat_activity WHERE application_name "
                                "LIKE 'jitgate:%' AND state = 'active' AND query LIKE '%pg_sleep%'"),
        "the pg_sleep backend",
    )
    # One Query message: the function is created and called in one go.
    waiter = subprocess.Popen(
        ["psql", "-h", "127.0.0.1", "-p", str(args.pg_port), "-U", "postgres", "-d", "postgres",
         "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1",
         "-c", WAIT_FN + f"SELECT pg_temp.wait_gone({int(pid)});"],
        env=dict(os.environ, PGPASSWORD=args.pg_password, PGAPPNAME=WAITER_APP),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    # The waiter must be inside its loop before the clock starts.
    wait_for(
        lambda: admin_sql(args, f"SELECT 1 FROM pg_stat_activity WHERE application_name = "
                                f"'{WAITER_APP}' AND state = 'active' AND query LIKE '%wait_gone%'"),
        "the pg_stat_activity poller",
    )

    t0 = time.time()
    res = api(args, "POST", f"/v1/grants/{gid}/revoke", args.admin_token, {"reason": "bench"})
    t_api = time.time()

    reaper.join(timeout=30)
    if reaper.is_alive():
        sleeper.kill()
        sys.exit("termination: psql did not exit within 30 s of the revoke")
    w_out, w_err = waiter.communicate(timeout=30)
    if waiter.returncode != 0:
        sys.exit(f"termination: poller failed: {w_err}")
    t_gone = float(w_out.strip().splitlines()[-1])

    err = exited["stderr"]
    if "FATAL" not in err or sleeper.returncode == 0:
        sys.exit(f"termination: psql exited {sleeper.returncode} without a FATAL: {err!r}")
    killed = res.get("sessions_terminated")
    return {
        "fatal": (exited["at"] - t0) * 1000,
        "gone": (t_gone - t0) * 1000,
        "api": (t_api - t0) * 1000,
        "terminated": killed,
        "stderr": err.strip().splitlines()[0],
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--admin-port", type=int, required=True)
    p.add_argument("--proxy-port", type=int, required=True)
    p.add_argument("--pg-port", type=int, required=True)
    p.add_argument("--pg-password", required=True)
    p.add_argument("--token", required=True, help="the requester's API token")
    p.add_argument("--admin-token", required=True)
    p.add_argument("--user", required=True, help="the requester's jitgate user name")
    p.add_argument("--target", required=True)
    p.add_argument("--dbname", required=True)
    p.add_argument("--trials", type=int, default=10)
    args = p.parse_args()

    rows = []
    for n in range(1, args.trials + 1):
        r = trial(args, n)
        rows.append(r)
        print(f"  trial {n:2}: fatal {r['fatal']:7.1f} ms   backend gone {r['gone']:7.1f} ms   "
              f"revoke call {r['api']:7.1f} ms   sessions_terminated={r['terminated']}", flush=True)
        time.sleep(0.2)
    print(f"  psql stderr: {rows[-1]['stderr']}")
    bad = [r["terminated"] for r in rows if r["terminated"] != 1]
    if bad:
        print(f"  WARNING: sessions_terminated was not 1 in {len(bad)} trials: {bad}")
    print()
    print(f"  {'termination (' + str(len(rows)) + ' trials)':<40} {'median':>10} {'max':>10}")
    for key, label in [("fatal", "revoke -> psql exits with FATAL"),
                       ("gone", "revoke -> backend gone (pg_stat_activity)"),
                       ("api", "revoke API call duration")]:
        v = [r[key] for r in rows]
        print(f"  {label:<40} {statistics.median(v):7.1f} ms {max(v):7.1f} ms")


if __name__ == "__main__":
    main()
