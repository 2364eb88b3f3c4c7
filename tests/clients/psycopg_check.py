"""psycopg through the jitgate PostgreSQL proxy: cancel, async, LISTEN/NOTIFY,
large objects. Usage: psycopg_check.py CONNINFO (password in PGPASSWORD).
Prints one line per check and exits non-zero on the first failure."""

import asyncio
import sys
import threading
import time

import psycopg

conninfo = sys.argv[1]


def check_cancel():
    with psycopg.connect(conninfo, autocommit=True) as conn:
        def later():
            time.sleep(0.5)
            conn.cancel_safe()
        t = threading.Thread(target=later)
        t.start()
        try:
            conn.execute("SELECT pg_sleep(30)")
        except psycopg.errors.QueryCanceled:
            print("cancel: ok")
        else:
            raise SystemExit("cancel: the query was not cancelled")
        finally:
            t.join()
        # The connection is still usable after a cancel.
        assert conn.execute("SELECT 41 + 1").fetchone()[0] == 42


async def check_async():
    async def one(i):
        async with await psycopg.AsyncConnection.connect(conninfo) as conn:
            cur = await conn.execute("SELECT pg_sleep(0.2), %s::int * 2", (i,))
            return (await cur.fetchone())[1]
    got = await asyncio.gather(*(one(i) for i in range(4)))
    assert got == [0, 2, 4, 6], got
    print("async: ok")


def check_listen_notify():
    with psycopg.connect(conninfo, autocommit=True) as listener, psycopg.connect(
        conninfo, autocommit=True
    ) as sender:
        listener.execute("LISTEN jitgate_test")
        sender.execute("NOTIFY jitgate_test, 'hello'")
        for n in listener.notifies(timeout=10, stop_after=1):
            assert n.payload == "hello", n
            print("listen/notify: ok")
            return
        raise SystemExit("listen/notify: no notification")


def check_large_objects():
    data = bytes(range(256)) * 4096  # 1 MiB
    with psycopg.connect(conninfo) as conn:
        oid = conn.execute("SELECT lo_from_bytea(0, %s)", (data,)).fetchone()[0]
        back = conn.execute("SELECT lo_get(%s)", (oid,)).fetchone()[0]
        assert bytes(back) == data
        conn.execute("SELECT lo_unlink(%s)", (oid,))
    print("large objects: ok")


check_cancel()
asyncio.run(check_async())
check_listen_notify()
check_large_objects()
print("ALL OK")
