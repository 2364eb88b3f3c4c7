"""A driver's view of a PostgreSQL connection, printed as JSON so that the
same run direct to the server and through jitgate can be compared.

Usage: psycopg_compat.py CONNINFO   (password in PGPASSWORD)

Covers what drivers lean on beyond simple queries: pipeline mode, server-side
prepared statements, binary COPY in and out, binary result transfer of many
types, LISTEN/NOTIFY to self, a large result streamed through a server-side
cursor, errors with their SQLSTATE mid-pipeline, and the backend pid and
application_name the client is told. Values that differ by nature between
two connections (pids) are reported as relations, not numbers."""

import hashlib
from decimal import Decimal
import json
import sys

import psycopg
from psycopg import sql

conninfo = sys.argv[1]
out = {}


def check(name):
    def wrap(f):
        try:
            out[name] = f()
        except Exception as e:  # the comparison shows which check broke
            out[name] = {"error": type(e).__name__, "message": str(e)}
        return f
    return wrap


with psycopg.connect(conninfo, autocommit=True, application_name="compat-app") as conn:
    conn.execute("DROP TABLE IF EXISTS compat_t")
    conn.execute("CREATE TABLE compat_t (id int PRIMARY KEY, v text, b bytea, j jsonb, n numeric, t timestamptz)")

    @check("backend_pid_matches")
    def _():
        return conn.info.backend_pid == conn.execute("SELECT pg_backend_pid()").fetchone()[0]

    @check("application_name")
    def _():
        return {
            "parameter_status": conn.info.parameter_status("application_name"),
            "after_set": (conn.execute("SET application_name = 'compat-2'"),
                          conn.info.parameter_status("application_name"))[1],
        }

    @check("pipeline")
    def _():
        results = []
        with conn.pipeline():
            curs = [conn.execute("SELECT %s::int * 2", (i,)) for i in range(50)]
            conn.execute("INSERT INTO compat_t (id, v) VALUES (%s, %s)", (1, "one"))
        for c in curs:
            results.append(c.fetchone()[0])
        # An error in a pipeline: the SQLSTATE, and the connection goes on.
        state = None
        try:
            with conn.pipeline():
                conn.execute("SELECT 1")
                conn.execute("INSERT INTO compat_t (id, v) VALUES (1, 'dup')")
                conn.execute("SELECT 2")
        except psycopg.Error as e:
            state = e.sqlstate
        return {"sum": sum(results), "n": len(results), "error_sqlstate": state,
                "after": conn.execute("SELECT 7").fetchone()[0]}

    @check("prepared_statements")
    def _():
        total = 0
        for i in range(20):
            total += conn.execute("SELECT %s::int + 1", (i,), prepare=True).fetchone()[0]
        prepared = conn.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE from_sql = false").fetchone()[0]
        return {"total": total, "server_side_prepared": prepared >= 1}

    @check("binary_types")
    def _():
        cur = conn.cursor(binary=True)
        row = cur.execute(
            "SELECT 1::int2, 2::int4, 3::int8, 1.5::float8, 'x'::text, '\\x00ff'::bytea,"
            " '{\"a\": [1, 2]}'::jsonb, 12.345::numeric, '2026-01-02T03:04:05Z'::timestamptz,"
            " ARRAY[1, 2, 3]::int[], true, NULL::int, 'a5c8f2b0-1c55-4b8e-9e44-2d0f9ef2b7a1'::uuid"
        ).fetchone()
        return [str(v) for v in row]

    @check("copy_binary")
    def _():
        rows = [(i, f"v{i}", bytes([i % 256]) * 10, json.dumps({"i": i}), Decimal(i) / 7, None)
                for i in range(2, 20002)]
        with conn.cursor() as cur:
            with cur.copy("COPY compat_t (id, v, b, j, n, t) FROM STDIN (FORMAT BINARY)") as cp:
                cp.set_types(["int4", "text", "bytea", "jsonb", "numeric", "timestamptz"])
                for r in rows:
                    cp.write_row(r)
            h = hashlib.sha256()
            n = 0
            with cur.copy("COPY (SELECT id, v, b FROM compat_t ORDER BY id) TO STDOUT (FORMAT BINARY)") as cp:
                cp.set_types(["int4", "text", "bytea"])
                for r in cp.rows():
                    h.update(repr(r).encode())
                    n += 1
        return {"rows": n, "sha256": h.hexdigest()}

    @check("large_result")
    def _():
        h = hashlib.sha256()
        n = 0
        with conn.transaction():
            with conn.cursor(name="big") as cur:
                cur.itersize = 5000
                cur.execute("SELECT g, md5(g::text) FROM generate_series(1, 300000) g")
                for r in cur:
                    h.update(r[1].encode())
                    n += 1
        whole = conn.execute("SELECT string_agg(md5(g::text), '') FROM generate_series(1, 50000) g").fetchone()[0]
        return {"rows": n, "sha256": h.hexdigest(), "one_big_value": len(whole)}

    @check("listen_notify")
    def _():
        conn.execute("LISTEN compat_chan")
        conn.execute("NOTIFY compat_chan, 'hello'")
        gen = conn.notifies(timeout=5, stop_after=1)
        got = [(n.channel, n.payload, n.pid == conn.info.backend_pid) for n in gen]
        return got

    @check("errors")
    def _():
        codes = []
        for q in ["SELECT 1/0", "SELECT * FROM nope", "SELEC 1"]:
            try:
                conn.execute(q)
            except psycopg.Error as e:
                codes.append(e.sqlstate)
        return codes

    @check("transactions")
    def _():
        with conn.transaction():
            conn.execute("INSERT INTO compat_t (id, v) VALUES (-1, 'tx')")
            with conn.transaction():  # a savepoint
                conn.execute("INSERT INTO compat_t (id, v) VALUES (-2, 'sp')")
            try:
                with conn.transaction():  # a savepoint rolled back by an error
                    conn.execute("INSERT INTO compat_t (id, v) VALUES (-3, 'gone')")
                    conn.execute("SELECT 1/0")
            except psycopg.errors.DivisionByZero:
                pass
        return conn.execute("SELECT count(*) FROM compat_t WHERE id < 0").fetchone()[0]

    conn.execute(sql.SQL("DROP TABLE compat_t"))

print(json.dumps(out, sort_keys=True))
