#!/usr/bin/env python3
"""Client compatibility checks for lalo: the Python drivers and tools users run.

Covers psycopg 3, psycopg2, asyncpg, SQLAlchemy 2, pandas.read_sql, the catalog queries pgcli
sends, and the start-up traffic of Npgsql-based tools (Power BI). Each check prints one line,
`ok <client>: <check>` or `FAIL <client>: <check>: <error>`; the exit status is 1 if any failed.

    python3 tests/clients/python_clients.py --port 6432
    python3 tests/clients/python_clients.py --port 6432 --only psycopg3,asyncpg

Expected values are those of the embedded TPC-H demo catalog (schema tpch, scale 0.01).
"""

import argparse
import asyncio
import datetime as dt
import json
import logging
import os
import pathlib
import signal
import sys
import traceback
import warnings
from decimal import Decimal

CHECK_TIMEOUT_S = 60

# --------------------------------------------------------------------------------------------
# Shared expectations
# --------------------------------------------------------------------------------------------

TYPED_SQL = (
    "SELECT true AS b, CAST(1 AS SMALLINT) AS i2, CAST(2 AS INT) AS i4, "
    "CAST(3000000000 AS BIGINT) AS i8, CAST(1.5 AS REAL) AS f4, CAST(2.25 AS DOUBLE PRECISION) AS f8, "
    "CAST(12.34 AS NUMERIC(10,2)) AS num, 'hé' AS t, CAST('v' AS VARCHAR) AS vc, "
    "DATE '2024-02-29' AS d, TIMESTAMP '2024-02-29 13:14:15.123456' AS ts, "
    "CAST('2024-02-29 13:14:15.123456+00' AS TIMESTAMPTZ) AS tstz, "
    "INTERVAL '1 day 2 hours' AS iv, decode('0102ff', 'hex') AS by"
)
TYPED_COLUMNS = ["b", "i2", "i4", "i8", "f4", "f8", "num", "t", "vc", "d", "ts", "tstz", "iv", "by"]

UTC = dt.timezone.utc
TS = dt.datetime(2024, 2, 29, 13, 14, 15, 123456)
TSTZ = dt.datetime(2024, 2, 29, 13, 14, 15, 123456, tzinfo=UTC)


def _is_exact(cls):
    return lambda v: type(v) is cls


# (column, expected value, predicate on the Python type, description of the type)
TYPED_EXPECT = [
    ("b", True, _is_exact(bool), "bool"),
    ("i2", 1, _is_exact(int), "int"),
    ("i4", 2, _is_exact(int), "int"),
    ("i8", 3000000000, _is_exact(int), "int"),
    ("f4", 1.5, _is_exact(float), "float"),
    ("f8", 2.25, _is_exact(float), "float"),
    ("num", Decimal("12.34"), _is_exact(Decimal), "Decimal"),
    ("t", "hé", _is_exact(str), "str"),
    ("vc", "v", _is_exact(str), "str"),
    ("d", dt.date(2024, 2, 29), _is_exact(dt.date), "date"),
    ("ts", TS, lambda v: type(v) is dt.datetime and v.tzinfo is None, "naive datetime"),
    ("tstz", TSTZ, lambda v: type(v) is dt.datetime and v.tzinfo is not None, "aware datetime"),
    ("iv", dt.timedelta(days=1, hours=2), _is_exact(dt.timedelta), "timedelta"),
    ("by", b"\x01\x02\xff", lambda v: isinstance(v, (bytes, memoryview)), "bytes/memoryview"),
]

TPCH_TABLES = {"region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem"}
NATION_COLUMNS = ["n_nationkey", "n_name", "n_regionkey", "n_comment"]
EUROPE = ["FRANCE", "GERMANY", "ROMANIA", "RUSSIA", "UNITED KINGDOM"]
ORDERS_ON_1995_09_16 = 16  # SELECT count(*) FROM tpch.orders WHERE o_orderdate = DATE '1995-09-16'
ORDERS_PRICE_GT_200000_50 = 3810  # ... WHERE o_totalprice > 200000.50
ORDERS_SINCE_1995 = 8134  # ... WHERE o_orderdate >= DATE '1995-01-01'


def compare_typed(row):
    """row: mapping column -> value. Raises AssertionError listing every mismatch."""
    problems = []
    for col, want, type_ok, type_desc in TYPED_EXPECT:
        if col not in row:
            problems.append(f"{col}: missing column (got {list(row)})")
            continue
        got = row[col]
        value = bytes(got) if isinstance(got, memoryview) else got
        if not type_ok(got):
            problems.append(f"{col}: want {type_desc} {want!r}, got {type(got).__name__} {got!r}")
        elif value != want:
            problems.append(f"{col}: want {want!r}, got {got!r}")
    if problems:
        raise AssertionError("; ".join(problems))


def eq(got, want, what="value"):
    if got != want:
        raise AssertionError(f"{what}: want {want!r}, got {got!r}")


# --------------------------------------------------------------------------------------------
# Runner
# --------------------------------------------------------------------------------------------


class Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise Timeout(f"no answer within {CHECK_TIMEOUT_S}s")


def describe(exc):
    code = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    orig = getattr(exc, "orig", None)  # SQLAlchemy wraps driver errors
    if code is None and orig is not None:
        code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    text = str(orig if orig is not None else exc).strip().replace("\n", " | ")
    if len(text) > 600:
        text = text[:600] + "..."
    prefix = type(exc).__name__ + (f" [{code}]" if code else "")
    return f"{prefix}: {text}"


class Runner:
    def __init__(self, verbose=False):
        self.failures = 0
        self.passes = 0
        self.verbose = verbose
        signal.signal(signal.SIGALRM, _alarm)

    def _report(self, client, name, exc):
        if exc is None:
            self.passes += 1
            print(f"ok {client}: {name}", flush=True)
        else:
            self.failures += 1
            print(f"FAIL {client}: {name}: {describe(exc)}", flush=True)
            if self.verbose:
                traceback.print_exception(exc, file=sys.stderr)

    def check(self, client, name, fn):
        """Run fn(); return its result, or None when it failed."""
        signal.alarm(CHECK_TIMEOUT_S)
        try:
            result = fn()
        except BaseException as exc:  # noqa: BLE001 - every failure is a reported line
            if isinstance(exc, KeyboardInterrupt):
                raise
            signal.alarm(0)
            self._report(client, name, exc)
            return None
        signal.alarm(0)
        self._report(client, name, None)
        return result

    async def acheck(self, client, name, coro_fn):
        try:
            result = await asyncio.wait_for(coro_fn(), CHECK_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001
            self._report(client, name, exc)
            return None
        self._report(client, name, None)
        return result


# --------------------------------------------------------------------------------------------
# psycopg 3
# --------------------------------------------------------------------------------------------


def run_psycopg3(r, a):
    import psycopg
    from psycopg.rows import dict_row

    C = "psycopg3"
    state = {}

    def connect():
        conn = psycopg.connect(host=a.host, port=a.port, user=a.user, password=a.password,
                               dbname=a.database, connect_timeout=10)
        state["conn"] = conn
        if conn.info.server_version < 90000:
            raise AssertionError(f"server_version parsed as {conn.info.server_version}")

    if r.check(C, "connect (server_version parsed)", connect) is None and "conn" not in state:
        return
    conn = state["conn"]

    def simple_count():
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM tpch.nation")  # no params: simple query protocol
            eq(cur.fetchone()[0], 25, "count(*) FROM tpch.nation")
        conn.commit()
    r.check(C, "simple query SELECT count(*) FROM tpch.nation = 25", simple_count)

    def server_param():
        with conn.cursor() as cur:
            cur.execute("SELECT n_name FROM tpch.nation WHERE n_nationkey = %s", (7,))
            eq(cur.fetchall(), [("GERMANY",)], "rows")
        conn.commit()
    r.check(C, "server-side parameter WHERE n_nationkey = %s (7) -> GERMANY", server_param)

    def param_types():
        params = (7, 3000000000, "hé", dt.date(2024, 2, 29), Decimal("12.34"), True, 2.25)
        with conn.cursor() as cur:
            cur.execute("SELECT %s AS i, %s AS big, %s AS t, %s AS d, %s AS n, %s AS b, %s AS f", params)
            row = cur.fetchone()
        conn.commit()
        eq(tuple(row), params, "round-tripped parameters")
        for got, want in zip(row, params):
            if type(got) is not type(want):
                raise AssertionError(f"{want!r} came back as {type(got).__name__} {got!r}")
    r.check(C, "parameters int/bigint/text/date/numeric/bool/float round-trip", param_types)

    def filter_params():
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM tpch.orders WHERE o_orderdate = %s", (dt.date(1995, 9, 16),))
            eq(cur.fetchone()[0], ORDERS_ON_1995_09_16, "orders on 1995-09-16")
            cur.execute("SELECT count(*) FROM tpch.orders WHERE o_totalprice > %s", (Decimal("200000.50"),))
            eq(cur.fetchone()[0], ORDERS_PRICE_GT_200000_50, "orders with o_totalprice > 200000.50")
            cur.execute("SELECT n_nationkey FROM tpch.nation WHERE n_name = %s", ("GERMANY",))
            eq(cur.fetchall(), [(7,)], "nation key of GERMANY")
        conn.commit()
    r.check(C, "date/numeric/text parameters filter tpch tables", filter_params)

    def prepared():
        got = []
        with conn.cursor() as cur:
            for key in (7, 8, 7, 8):
                cur.execute("SELECT n_name FROM tpch.nation WHERE n_nationkey = %s", (key,), prepare=True)
                got.append(cur.fetchone()[0])
        conn.commit()
        eq(got, ["GERMANY", "INDIA", "GERMANY", "INDIA"], "names")
    r.check(C, "execute(..., prepare=True) named prepared statement reused", prepared)

    def typed_text():
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(TYPED_SQL)
            compare_typed(cur.fetchone())
        conn.commit()
    r.check(C, "typed values, text format (every type)", typed_text)

    def typed_binary():
        with conn.cursor(row_factory=dict_row, binary=True) as cur:
            cur.execute(TYPED_SQL)
            compare_typed(cur.fetchone())
        conn.commit()
    r.check(C, "typed values, binary=True (every type)", typed_binary)

    def binary_params():
        with conn.cursor() as cur:
            cur.execute("SELECT n_name, n_regionkey FROM tpch.nation WHERE n_nationkey = %b", (7,), binary=True)
            eq(cur.fetchall(), [("GERMANY", 3)], "rows")
        conn.commit()
    r.check(C, "binary parameters and binary results (%b, binary=True)", binary_params)

    def many_rows():
        n = 0
        total = Decimal(0)
        with conn.cursor(binary=True) as cur:
            cur.execute("SELECT l_orderkey, l_extendedprice, l_shipdate FROM tpch.lineitem")
            for row in cur:
                n += 1
                total += Decimal(row[1])
        conn.commit()
        eq(n, 60175, "lineitem rows")
    r.check(C, "fetch all 60175 tpch.lineitem rows (binary)", many_rows)

    def nulls():
        with conn.cursor() as cur:
            cur.execute("SELECT CAST(NULL AS INT) AS a, CAST(NULL AS TEXT) AS b, CAST(NULL AS DATE) AS c")
            eq(cur.fetchone(), (None, None, None), "row")
        conn.commit()
    r.check(C, "NULLs of several types come back as None", nulls)

    def transaction():
        # A fresh connection, so that no prepared statement is involved (see the next check).
        with psycopg.connect(host=a.host, port=a.port, user=a.user, password=a.password,
                             dbname=a.database, connect_timeout=10) as c2:
            with c2.cursor() as cur:
                cur.execute("SELECT 1")
                eq(c2.info.transaction_status, psycopg.pq.TransactionStatus.INTRANS, "status after implicit BEGIN")
                c2.commit()
                cur.execute("SELECT 2")
                c2.rollback()
                eq(c2.info.transaction_status, psycopg.pq.TransactionStatus.IDLE, "status after ROLLBACK")
            with c2.transaction():
                c2.execute("SELECT 3")
    r.check(C, "transactions: implicit BEGIN, COMMIT, ROLLBACK, conn.transaction()", transaction)

    def rollback_after_prepare():
        # psycopg forgets its prepared statements on rollback by sending DEALLOCATE ALL.
        with conn.cursor() as cur:
            cur.execute("SELECT n_name FROM tpch.nation WHERE n_nationkey = %s", (7,), prepare=True)
        conn.rollback()
        with conn.cursor() as cur:
            cur.execute("SELECT n_name FROM tpch.nation WHERE n_nationkey = %s", (8,), prepare=True)
            eq(cur.fetchone()[0], "INDIA", "after rollback")
        conn.commit()
    r.check(C, "rollback after prepare=True (psycopg sends DEALLOCATE ALL)", rollback_after_prepare)
    try:
        conn.rollback()
    except Exception:
        pass

    def savepoint():
        with conn.transaction():
            with conn.transaction():  # nested: SAVEPOINT / RELEASE SAVEPOINT
                eq(conn.execute("SELECT count(*) FROM tpch.region").fetchone()[0], 5, "regions")
        conn.commit()
    r.check(C, "nested conn.transaction() (SAVEPOINT / RELEASE)", savepoint)
    try:
        conn.rollback()
    except Exception:
        pass

    def write_refused():
        try:
            with conn.cursor() as cur:
                cur.execute("CREATE TABLE tpch.clients_probe (a INT)")
            raise AssertionError("CREATE TABLE succeeded on a read-only gateway")
        except psycopg.Error as e:
            conn.rollback()
            eq(e.sqlstate, "0A000", "SQLSTATE")
        with conn.cursor() as cur:  # the session must still work after the error
            cur.execute("SELECT count(*) FROM tpch.region")
            eq(cur.fetchone()[0], 5, "regions after error")
        conn.commit()
    r.check(C, "CREATE TABLE refused with SQLSTATE 0A000, session usable after", write_refused)

    def unknown_table():
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT * FROM tpch.no_such_table")
            raise AssertionError("query on a missing table succeeded")
        except psycopg.Error as e:
            conn.rollback()
            eq(e.sqlstate, "42P01", "SQLSTATE")
    r.check(C, "unknown table -> SQLSTATE 42P01", unknown_table)

    def named_cursor():
        n = 0
        with conn.cursor(name="lalo_clients_cur") as cur:
            cur.itersize = 2000
            cur.execute("SELECT o_orderkey FROM tpch.orders")
            for _ in cur:
                n += 1
        conn.commit()
        eq(n, 15000, "orders rows through server-side cursor")
    r.check(C, "server-side (named) cursor over tpch.orders", named_cursor)

    try:
        conn.close()
    except Exception:
        pass


# --------------------------------------------------------------------------------------------
# psycopg2
# --------------------------------------------------------------------------------------------


def run_psycopg2(r, a):
    import psycopg2
    import psycopg2.extras

    C = "psycopg2"
    state = {}

    def connect():
        conn = psycopg2.connect(host=a.host, port=a.port, user=a.user, password=a.password,
                                dbname=a.database, connect_timeout=10)
        state["conn"] = conn
        if conn.server_version < 90000:
            raise AssertionError(f"server_version parsed as {conn.server_version}")

    r.check(C, "connect (server_version parsed)", connect)
    if "conn" not in state:
        return
    conn = state["conn"]

    def count():
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM tpch.nation")
            eq(cur.fetchone()[0], 25, "count(*)")
        conn.commit()
    r.check(C, "SELECT count(*) FROM tpch.nation = 25", count)

    def client_params():
        with conn.cursor() as cur:
            cur.execute("SELECT n_name FROM tpch.nation WHERE n_nationkey = %s", (7,))
            eq(cur.fetchall(), [("GERMANY",)], "rows")
        conn.commit()
    r.check(C, "client-side parameter WHERE n_nationkey = %s (7) -> GERMANY", client_params)

    def param_types():
        params = (7, 3000000000, "hé", dt.date(2024, 2, 29), Decimal("12.34"), True, 2.25)
        # psycopg2 interpolates literals: 12.34 and 2.25 are numeric literals, which PostgreSQL types numeric.
        expected = (7, 3000000000, "hé", dt.date(2024, 2, 29), Decimal("12.34"), True, Decimal("2.25"))
        with conn.cursor() as cur:
            cur.execute("SELECT %s AS i, %s AS big, %s AS t, %s AS d, %s AS n, %s AS b, %s AS f", params)
            sent = cur.query.decode()
            row = cur.fetchone()
        conn.commit()
        for got, want in zip(row, expected):
            if type(got) is not type(want) or got != want:
                raise AssertionError(f"{want!r} came back as {type(got).__name__} {got!r} (sent: {sent})")
    r.check(C, "parameters int/bigint/text/date/numeric/bool/float round-trip", param_types)

    def filter_params():
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM tpch.orders WHERE o_orderdate = %s", (dt.date(1995, 9, 16),))
            eq(cur.fetchone()[0], ORDERS_ON_1995_09_16, "orders on 1995-09-16")
            cur.execute("SELECT count(*) FROM tpch.orders WHERE o_totalprice > %s", (Decimal("200000.50"),))
            eq(cur.fetchone()[0], ORDERS_PRICE_GT_200000_50, "orders with o_totalprice > 200000.50")
        conn.commit()
    r.check(C, "date/numeric parameters filter tpch.orders", filter_params)

    def typed_text():
        with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute(TYPED_SQL)
            compare_typed(cur.fetchone())
        conn.commit()
    r.check(C, "typed values (every type)", typed_text)

    def sql_prepare():
        with conn.cursor() as cur:
            cur.execute("PREPARE lalo_nat(int) AS SELECT n_name FROM tpch.nation WHERE n_nationkey = $1")
            cur.execute("EXECUTE lalo_nat(%s)", (7,))
            eq(cur.fetchall(), [("GERMANY",)], "EXECUTE lalo_nat(7)")
            cur.execute("EXECUTE lalo_nat(%s)", (8,))
            eq(cur.fetchall(), [("INDIA",)], "EXECUTE lalo_nat(8)")
            cur.execute("DEALLOCATE lalo_nat")
        conn.commit()
    r.check(C, "server-side parameters via PREPARE/EXECUTE/DEALLOCATE", sql_prepare)

    def named_cursor():
        n = 0
        with conn.cursor(name="lalo_psy2_cur") as cur:
            cur.itersize = 2000
            cur.execute("SELECT o_orderkey FROM tpch.orders")
            for _ in cur:
                n += 1
        conn.commit()
        eq(n, 15000, "orders rows through server-side cursor")
    r.check(C, "server-side (named) cursor over tpch.orders", named_cursor)
    try:
        conn.rollback()
    except Exception:
        pass

    def write_refused():
        try:
            with conn.cursor() as cur:
                cur.execute("CREATE TABLE tpch.clients_probe (a INT)")
            raise AssertionError("CREATE TABLE succeeded on a read-only gateway")
        except psycopg2.Error as e:
            conn.rollback()
            eq(e.pgcode, "0A000", "SQLSTATE")
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM tpch.region")
            eq(cur.fetchone()[0], 5, "regions after error")
        conn.commit()
    r.check(C, "CREATE TABLE refused with SQLSTATE 0A000, session usable after", write_refused)

    try:
        conn.close()
    except Exception:
        pass


# --------------------------------------------------------------------------------------------
# asyncpg
# --------------------------------------------------------------------------------------------


async def run_asyncpg(r, a):
    import asyncpg

    C = "asyncpg"
    state = {}

    async def connect():
        conn = await asyncpg.connect(host=a.host, port=a.port, user=a.user, password=a.password,
                                     database=a.database, timeout=10)
        state["conn"] = conn
        v = conn.get_server_version()
        if v.major < 9:
            raise AssertionError(f"server version parsed as {v}")

    await r.acheck(C, "connect (server version parsed)", connect)
    if "conn" not in state:
        return
    conn = state["conn"]

    async def count():
        eq(await conn.fetchval("SELECT count(*) FROM tpch.nation"), 25, "count(*)")
    await r.acheck(C, "SELECT count(*) FROM tpch.nation = 25", count)

    async def count_name():
        row = await conn.fetchrow("SELECT count(*) FROM tpch.nation")
        eq(list(row.keys()), ["count"], "column names of SELECT count(*)")
    await r.acheck(C, "SELECT count(*) result column is named 'count' (record['count'])", count_name)

    async def typed():
        row = await conn.fetchrow(TYPED_SQL)
        compare_typed(dict(row.items()))
    await r.acheck(C, "typed values in binary format (every type)", typed)

    async def prepared():
        stmt = await conn.prepare("SELECT n_name, n_regionkey FROM tpch.nation WHERE n_nationkey = $1")
        params = [t.name for t in stmt.get_parameters()]
        if len(params) != 1 or params[0] not in ("int2", "int4", "int8"):
            raise AssertionError(f"parameter types {params}")
        eq([att.name for att in stmt.get_attributes()], ["n_name", "n_regionkey"], "attributes")
        eq(tuple(await stmt.fetchrow(7)), ("GERMANY", 3), "fetchrow(7)")
        eq(await stmt.fetchval(8), "INDIA", "fetchval(8)")
    await r.acheck(C, "prepared statement: parameter/attribute types, reuse", prepared)

    async def param_types():
        params = (7, 3000000000, "hé", dt.date(2024, 2, 29), Decimal("12.34"), True, 2.25)
        row = await conn.fetchrow(
            "SELECT $1::int4 AS i, $2::int8 AS big, $3::text AS t, $4::date AS d, "
            "$5::numeric AS n, $6::bool AS b, $7::float8 AS f", *params)
        eq(tuple(row), params, "round-tripped parameters")
    await r.acheck(C, "binary parameters int/bigint/text/date/numeric/bool/float round-trip", param_types)

    async def inferred_params():
        eq(await conn.fetchval("SELECT count(*) FROM tpch.orders WHERE o_orderdate = $1", dt.date(1995, 9, 16)),
           ORDERS_ON_1995_09_16, "orders on 1995-09-16")
        eq(await conn.fetchval("SELECT count(*) FROM tpch.orders WHERE o_totalprice > $1", Decimal("200000.50")),
           ORDERS_PRICE_GT_200000_50, "orders with o_totalprice > 200000.50")
        eq(await conn.fetchval("SELECT n_nationkey FROM tpch.nation WHERE n_name = $1", "GERMANY"), 7, "GERMANY key")
    await r.acheck(C, "untyped $n parameters inferred from columns (date, numeric, text)", inferred_params)

    async def introspection():
        # set_type_codec runs asyncpg's type-by-name introspection query against pg_type/pg_namespace.
        await conn.set_type_codec("numeric", encoder=str, decoder=str, schema="pg_catalog", format="text")
        got = await conn.fetchval("SELECT CAST(12.34 AS NUMERIC(10,2))")
        await conn.reset_type_codec("numeric", schema="pg_catalog")
        eq(got, "12.34", "numeric decoded through the custom text codec")
    await r.acheck(C, "type introspection (set_type_codec on pg_catalog.numeric)", introspection)

    async def array_introspection():
        # int4[] is not a core codec: asyncpg introspects it through its pg_type query.
        eq(await conn.fetchval("SELECT ARRAY[1, 2, 3]"), [1, 2, 3], "ARRAY[1,2,3]")
    await r.acheck(C, "array result (type introspection of int4[])", array_introspection)

    async def many_rows():
        rows = await conn.fetch("SELECT o_orderkey, o_totalprice, o_orderdate FROM tpch.orders")
        eq(len(rows), 15000, "orders rows")
        first = min(rows, key=lambda x: x[0])
        eq(tuple(first), (1, Decimal("172799.49"), dt.date(1996, 1, 2)), "order 1")
    await r.acheck(C, "fetch 15000 tpch.orders rows (int8, numeric, date in binary)", many_rows)

    async def cursor():
        n = 0
        async with conn.transaction():
            async for _ in conn.cursor("SELECT o_orderkey FROM tpch.orders", prefetch=1000):
                n += 1
        eq(n, 15000, "rows through cursor (Execute with row limit, PortalSuspended)")
    await r.acheck(C, "cursor with prefetch=1000 inside a transaction", cursor)

    async def write_refused():
        try:
            await conn.execute("CREATE TABLE tpch.clients_probe (a INT)")
            raise AssertionError("CREATE TABLE succeeded on a read-only gateway")
        except asyncpg.PostgresError as e:
            eq(e.sqlstate, "0A000", "SQLSTATE")
        eq(await conn.fetchval("SELECT count(*) FROM tpch.region"), 5, "regions after error")
    await r.acheck(C, "CREATE TABLE refused with SQLSTATE 0A000, session usable after", write_refused)

    await conn.close()

    async def pool():
        p = await asyncpg.create_pool(host=a.host, port=a.port, user=a.user, password=a.password,
                                      database=a.database, min_size=1, max_size=1)
        try:
            for key in (7, 8):  # the second acquire reuses the connection after its reset
                async with p.acquire() as c:
                    await c.fetchval("SELECT n_name FROM tpch.nation WHERE n_nationkey = $1", key)
        finally:
            await p.close()
    await r.acheck(C, "pool: acquire, release (connection reset), acquire again", pool)


# --------------------------------------------------------------------------------------------
# SQLAlchemy 2
# --------------------------------------------------------------------------------------------


def url(a, driver):
    from sqlalchemy.engine import URL
    return URL.create(f"postgresql+{driver}", username=a.user, password=a.password, host=a.host,
                      port=a.port, database=a.database)


def run_sqlalchemy(r, a):
    import sqlalchemy as sa

    C = "sqlalchemy"
    engines = {}

    for driver in ("psycopg", "psycopg2"):
        def connect(driver=driver):
            eng = sa.create_engine(url(a, driver))
            with eng.connect() as c:
                eq(c.execute(sa.text("SELECT count(*) FROM tpch.nation")).scalar_one(), 25, "count")
            info = eng.dialect.server_version_info
            if not info or info[0] < 9:
                raise AssertionError(f"server_version_info = {info!r}")
            engines[driver] = eng
        r.check(C, f"engine connect postgresql+{driver} (version() parsed)", connect)


    eng = engines.get("psycopg") or engines.get("psycopg2") or sa.create_engine(url(a, "psycopg"))

    def schemas():
        names = sa.inspect(eng).get_schema_names()
        if "tpch" not in names:
            raise AssertionError(f"tpch not in {names}")
    r.check(C, "inspect().get_schema_names() includes tpch", schemas)

    def tables():
        insp = sa.inspect(eng)
        names = set(insp.get_table_names(schema="tpch"))
        eq(names, TPCH_TABLES, "tables in tpch")
        insp.get_view_names(schema="tpch")
        if not insp.has_table("nation", schema="tpch"):
            raise AssertionError("has_table('nation', schema='tpch') is False")
    r.check(C, "inspect().get_table_names(schema='tpch') = the 8 TPC-H tables", tables)

    def columns():
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # "Did not recognize type ..." must not happen
            cols = sa.inspect(eng).get_columns("nation", schema="tpch")
        eq([c["name"] for c in cols], NATION_COLUMNS, "column names")
        types = {c["name"]: c["type"] for c in cols}
        if not isinstance(types["n_nationkey"], sa.Integer):
            raise AssertionError(f"n_nationkey type {types['n_nationkey']!r}")
        if not isinstance(types["n_name"], sa.String):
            raise AssertionError(f"n_name type {types['n_name']!r}")
        ocols = {c["name"]: c["type"] for c in sa.inspect(eng).get_columns("orders", schema="tpch")}
        if not isinstance(ocols.get("o_orderdate"), sa.Date):
            raise AssertionError(f"o_orderdate type {ocols.get('o_orderdate')!r}")
        if not isinstance(ocols.get("o_totalprice"), sa.Numeric):
            raise AssertionError(f"o_totalprice type {ocols.get('o_totalprice')!r}")
    r.check(C, "inspect().get_columns() of tpch.nation/orders: names and types", columns)

    def declared_tables(md):
        nation = sa.Table("nation", md, sa.Column("n_nationkey", sa.BigInteger), sa.Column("n_name", sa.Text),
                          sa.Column("n_regionkey", sa.BigInteger), sa.Column("n_comment", sa.Text), schema="tpch")
        region = sa.Table("region", md, sa.Column("r_regionkey", sa.BigInteger), sa.Column("r_name", sa.Text),
                          sa.Column("r_comment", sa.Text), schema="tpch")
        orders = sa.Table("orders", md, sa.Column("o_orderkey", sa.BigInteger), sa.Column("o_orderdate", sa.Date),
                          sa.Column("o_totalprice", sa.Numeric(15, 2)), schema="tpch")
        return nation, region, orders

    def core_join():
        nation, region, _ = declared_tables(sa.MetaData())
        q = (sa.select(nation.c.n_name)
             .join_from(nation, region, nation.c.n_regionkey == region.c.r_regionkey)
             .where(region.c.r_name == "EUROPE")
             .order_by(nation.c.n_name))
        with eng.connect() as c:
            eq([row.n_name for row in c.execute(q)], EUROPE, "European nations")
    r.check(C, "Core select()/join_from()/where() with a bound parameter", core_join)

    def core_aggregate():
        _, _, orders = declared_tables(sa.MetaData())
        q = sa.select(sa.func.count()).select_from(orders).where(orders.c.o_orderdate >= dt.date(1995, 1, 1))
        with eng.connect() as c:
            eq(c.execute(q).scalar_one(), ORDERS_SINCE_1995, "orders since 1995")
        q = sa.select(sa.func.sum(orders.c.o_totalprice)).where(orders.c.o_orderkey == 1)
        with eng.connect() as c:
            eq(c.execute(q).scalar_one(), Decimal("172799.49"), "sum(o_totalprice) of order 1")
    r.check(C, "Core select(func.count()/func.sum()) with date/int bound parameters", core_aggregate)

    def reflect():
        md = sa.MetaData()
        nation = sa.Table("nation", md, autoload_with=eng, schema="tpch")
        eq([c.name for c in nation.columns], NATION_COLUMNS, "reflected columns")
        with eng.connect() as c:
            eq(c.execute(sa.select(nation.c.n_name).where(nation.c.n_nationkey == 7)).scalar_one(), "GERMANY",
               "n_name")
    r.check(C, "Table('nation', autoload_with=engine, schema='tpch') reflection and query", reflect)

    for e in engines.values():
        e.dispose()


# --------------------------------------------------------------------------------------------
# pandas
# --------------------------------------------------------------------------------------------


def run_pandas(r, a):
    import pandas as pd
    import psycopg2
    import sqlalchemy as sa

    C = "pandas"
    eng = sa.create_engine(url(a, "psycopg2"))

    def via_sqlalchemy():
        df = pd.read_sql(sa.text("SELECT n_nationkey, n_name FROM tpch.nation WHERE n_regionkey = :r "
                                 "ORDER BY n_name"), eng, params={"r": 3})
        eq(list(df["n_name"]), EUROPE, "n_name")
        eq(str(df["n_nationkey"].dtype), "int64", "dtype of n_nationkey")
    r.check(C, "read_sql(text(...), engine, params=...)", via_sqlalchemy)

    def read_table():
        df = pd.read_sql_table("nation", eng, schema="tpch")
        eq(len(df), 25, "rows")
        eq(list(df.columns), NATION_COLUMNS, "columns")
    r.check(C, "read_sql_table('nation', engine, schema='tpch')", read_table)

    def count_column():
        df = pd.read_sql("SELECT count(*) FROM tpch.nation", eng)
        eq(list(df.columns), ["count"], "column names")
        eq(int(df["count"][0]), 25, "count")
    r.check(C, "read_sql('SELECT count(*) ...') column is named 'count'", count_column)

    def chunks():
        n = sum(len(chunk) for chunk in pd.read_sql("SELECT o_orderkey FROM tpch.orders", eng, chunksize=4000))
        eq(n, 15000, "rows over all chunks")
    r.check(C, "read_sql(..., chunksize=4000) through SQLAlchemy", chunks)

    def via_psycopg2():
        conn = psycopg2.connect(host=a.host, port=a.port, user=a.user, password=a.password, dbname=a.database,
                                connect_timeout=10)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # pandas: "only supports SQLAlchemy..."
                df = pd.read_sql("SELECT o_orderkey, o_totalprice, o_orderdate FROM tpch.orders "
                                 "WHERE o_orderkey = %(k)s", conn, params={"k": 1}, parse_dates=["o_orderdate"])
                typed = pd.read_sql(TYPED_SQL, conn)
        finally:
            conn.close()
        eq(len(df), 1, "rows")
        eq(float(df["o_totalprice"][0]), 172799.49, "o_totalprice")  # coerce_float=True by default
        eq(df["o_orderdate"][0], pd.Timestamp("1996-01-02"), "o_orderdate")
        dtypes = {c: str(t) for c, t in typed.dtypes.items()}
        want = {"b": "bool", "i2": "int64", "i4": "int64", "i8": "int64", "f4": "float64", "f8": "float64"}
        bad = {c: dtypes.get(c) for c, t in want.items() if dtypes.get(c) != t}
        if bad:
            raise AssertionError(f"dtypes {bad}, want {want}")
        if not dtypes.get("ts", "").startswith("datetime64[") or "," in dtypes.get("ts", ""):
            raise AssertionError(f"ts dtype {dtypes.get('ts')}, want naive datetime64")
        if not dtypes.get("tstz", "").startswith("datetime64[") or "UTC" not in dtypes.get("tstz", ""):
            raise AssertionError(f"tstz dtype {dtypes.get('tstz')}, want datetime64[.., UTC]")
        row = typed.iloc[0]
        values = {"i8": int(row["i8"]), "f4": float(row["f4"]), "num": float(row["num"]), "t": row["t"],
                  "d": row["d"], "ts": row["ts"].to_pydatetime(), "tstz": row["tstz"].to_pydatetime(),
                  "iv": row["iv"].to_pytimedelta(), "by": bytes(row["by"])}
        want_values = {"i8": 3000000000, "f4": 1.5, "num": 12.34, "t": "hé", "d": dt.date(2024, 2, 29), "ts": TS,
                       "tstz": TSTZ, "iv": dt.timedelta(days=1, hours=2), "by": b"\x01\x02\xff"}
        eq(values, want_values, "values of the typed row")

    r.check(C, "read_sql through a psycopg2 connection (params, parse_dates, dtypes)", via_psycopg2)

    eng.dispose()


# --------------------------------------------------------------------------------------------
# pgcli (its exact catalog queries, via psycopg 3 as pgcli does)
# --------------------------------------------------------------------------------------------


def corpus_path():
    here = pathlib.Path(__file__).resolve()
    for base in [here.parents[3] / "shared", pathlib.Path("/work/shared")]:
        p = base / "corpora" / "clients" / "client_queries.json"
        if p.exists():
            return p
    raise FileNotFoundError("corpora/clients/client_queries.json not found (set LALO_CLIENT_QUERIES)")


def run_pgcli(r, a):
    import psycopg

    C = "pgcli"
    path = os.environ.get("LALO_CLIENT_QUERIES") or corpus_path()
    queries = json.load(open(path))["pgcli"]
    conn = r.check(C, "connect (autocommit, as pgcli)", lambda: psycopg.connect(
        host=a.host, port=a.port, user=a.user, password=a.password, dbname=a.database, autocommit=True,
        connect_timeout=10))
    if conn is None:
        return
    results = {}
    for i, q in enumerate(queries, 1):
        label = " ".join(q.split())
        label = label if len(label) <= 70 else label[:67] + "..."

        def run(q=q):
            with conn.cursor() as cur:
                cur.execute(q)
                return cur.fetchall() if cur.description else []
        results[i] = r.check(C, f"query {i}: {label}", run)

    def find(pred):
        return [i for i, q in enumerate(queries, 1) if pred(" ".join(q.split()))]

    def content():
        problems = []
        for i in find(lambda s: s.startswith("SELECT nspname FROM pg_catalog.pg_namespace")):
            if results.get(i) is not None and ("tpch",) not in results[i]:
                problems.append(f"query {i}: schema tpch missing")
        for i in find(lambda s: "relkind = ANY('{r,p,f}')" in s and "att.attname" not in s):
            if results.get(i) is not None and ("tpch", "nation") not in results[i]:
                problems.append(f"query {i}: table tpch.nation missing")
        for i in find(lambda s: "relkind = ANY('{r,p,f}')" in s and "att.attname" in s):
            rows = results.get(i) or []
            if results.get(i) is not None:
                got = [tuple(x[2:4]) for x in rows if x[0] == "tpch" and x[1] == "nation"]
                want = [("n_nationkey", "bigint"), ("n_name", "text"), ("n_regionkey", "bigint"),
                        ("n_comment", "text")]
                if [g[0] for g in got] != NATION_COLUMNS:
                    problems.append(f"query {i}: tpch.nation columns {got}")
                elif any(t not in ("bigint", "integer", "text", "character varying") for _, t in got):
                    problems.append(f"query {i}: tpch.nation column types {got} (expected PostgreSQL names, "
                                    f"e.g. {want})")
        for i in find(lambda s: s.startswith("SELECT d.datname")):
            if results.get(i) is not None and ("lalo",) not in results[i]:
                problems.append(f"query {i}: database lalo missing")
        if problems:
            raise AssertionError("; ".join(problems))
    r.check(C, "catalog answers list schema tpch, table tpch.nation, its columns, database lalo", content)
    conn.close()


# --------------------------------------------------------------------------------------------
# Npgsql / Power BI start-up
# --------------------------------------------------------------------------------------------

# The batch Npgsql (PostgresDatabaseInfo.LoadBackendTypes, PostgreSQL >= 14, default settings) sends
# in ONE simple-protocol Query message right after authentication: version, types, composite fields,
# enum labels. Npgsql reads four result sets in that order.
NPGSQL_TYPES_BATCH = """SELECT version();

SELECT ns.nspname, t.oid, t.typname, t.typtype, t.typnotnull, t.elemtypoid
FROM (
    -- Arrays have typtype=b - this subquery identifies them by their typreceive and converts their typtype to a
    -- We first do this for the type (innerest-most subquery), and then for its element type
    -- This also returns the array element, range subtype and domain base type as elemtypoid
    SELECT
        typ.oid, typ.typnamespace, typ.typname, typ.typtype, typ.typrelid, typ.typnotnull, typ.relkind,
        elemtyp.oid AS elemtypoid, elemtyp.typname AS elemtypname, elemcls.relkind AS elemrelkind,
        CASE WHEN elemproc.proname='array_recv' THEN 'a' ELSE elemtyp.typtype END AS elemtyptype
    FROM (
        SELECT typ.oid, typnamespace, typname, typrelid, typnotnull, relkind, typelem AS elemoid,
            CASE WHEN proc.proname='array_recv' THEN 'a' ELSE typ.typtype END AS typtype,
            CASE
                WHEN proc.proname='array_recv' THEN typ.typelem
                WHEN typ.typtype='r' THEN rngsubtype
                WHEN typ.typtype='m' THEN (SELECT rngtypid FROM pg_range WHERE rngmultitypid = typ.oid)
                WHEN typ.typtype='d' THEN typ.typbasetype
            END AS elemtypoid
        FROM pg_type AS typ
        LEFT JOIN pg_class AS cls ON (cls.oid = typ.typrelid)
        LEFT JOIN pg_proc AS proc ON proc.oid = typ.typreceive
        LEFT JOIN pg_range ON (pg_range.rngtypid = typ.oid)
    ) AS typ
    LEFT JOIN pg_type AS elemtyp ON elemtyp.oid = elemtypoid
    LEFT JOIN pg_class AS elemcls ON (elemcls.oid = elemtyp.typrelid)
    LEFT JOIN pg_proc AS elemproc ON elemproc.oid = elemtyp.typreceive
) AS t
JOIN pg_namespace AS ns ON (ns.oid = typnamespace)
WHERE
    typtype IN ('b', 'r', 'm', 'e', 'd') OR -- Base, range, multirange, enum, domain
    (typtype = 'c' AND relkind='c') OR -- User-defined free-standing composites (not table composites) by default
    (typtype = 'p' AND typname IN ('record', 'void')) OR -- Some special supported pseudo-types
    (typtype = 'a' AND (  -- Array of...
        elemtyptype IN ('b', 'r', 'm', 'e', 'd') OR -- Array of base, range, multirange, enum, domain
        (elemtyptype = 'p' AND elemtypname IN ('record', 'void')) OR -- Arrays of special supported pseudo-types
        (elemtyptype = 'c' AND elemrelkind='c') -- Array of user-defined free-standing composites (not table composites) by default
    ))
ORDER BY CASE
       WHEN typtype IN ('b', 'e', 'p') THEN 0           -- First base types, enums, pseudo-types
       WHEN typtype = 'r' THEN 1                        -- Ranges after
       WHEN typtype = 'm' THEN 2                        -- Multiranges after
       WHEN typtype = 'c' THEN 3                        -- Composites after
       WHEN typtype = 'd' AND elemtyptype <> 'a' THEN 4 -- Domains over non-arrays after
       WHEN typtype = 'a' THEN 5                        -- Arrays after
       WHEN typtype = 'd' AND elemtyptype = 'a' THEN 6  -- Domains over arrays last
END;

-- Load field definitions for (free-standing) composite types
SELECT typ.oid, att.attname, att.atttypid
FROM pg_type AS typ
JOIN pg_namespace AS ns ON (ns.oid = typ.typnamespace)
JOIN pg_class AS cls ON (cls.oid = typ.typrelid)
JOIN pg_attribute AS att ON (att.attrelid = typ.typrelid)
WHERE
  (typ.typtype = 'c' AND cls.relkind='c') AND
  attnum > 0 AND     -- Don't load system attributes
  NOT attisdropped
ORDER BY typ.oid, att.attnum;

-- Load enum fields
SELECT pg_type.oid, enumlabel
FROM pg_enum
JOIN pg_type ON pg_type.oid=enumtypid
ORDER BY oid, enumsortorder;
"""

# What Power BI's PostgreSQL connector (Npgsql underneath) asks when its navigator lists a schema.
POWERBI_COLUMNS = (
    "select COLUMN_NAME, ORDINAL_POSITION, IS_NULLABLE, DATA_TYPE from INFORMATION_SCHEMA.columns "
    "where TABLE_SCHEMA = 'tpch' and TABLE_NAME = 'nation' order by TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION"
)
POWERBI_TABLES = (
    "select TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE from INFORMATION_SCHEMA.tables "
    "where TABLE_SCHEMA not in ('information_schema', 'pg_catalog') order by TABLE_SCHEMA, TABLE_NAME"
)


def run_npgsql(r, a):
    import psycopg

    C = "npgsql"
    conn = r.check(C, "connect", lambda: psycopg.connect(
        host=a.host, port=a.port, user=a.user, password=a.password, dbname=a.database, autocommit=True,
        connect_timeout=10))
    if conn is None:
        return

    def type_loading():
        sets = []
        with conn.cursor() as cur:
            cur.execute(NPGSQL_TYPES_BATCH)  # no parameters: one simple-protocol Query message
            while True:
                sets.append(cur.fetchall() if cur.description else None)
                if not cur.nextset():
                    break
        eq(len(sets), 4, "number of result sets (version, types, composite fields, enum labels)")
        version = sets[0][0][0]
        if not version.startswith("PostgreSQL "):
            raise AssertionError(f"version() = {version!r}")
        types = sets[1]
        by_oid = {}
        for nsp, oid, typname, typtype, notnull, elem in types:
            if nsp is None or oid is None or typname is None or typtype is None or notnull is None:
                raise AssertionError(f"NULL in non-nullable column: {(nsp, oid, typname, typtype, notnull, elem)}")
            by_oid[int(oid)] = (typname, typtype, elem)
        for oid, name in [(16, "bool"), (20, "int8"), (23, "int4"), (25, "text"), (1043, "varchar"),
                          (1082, "date"), (1114, "timestamp"), (1184, "timestamptz"), (1700, "numeric"),
                          (17, "bytea"), (701, "float8")]:
            got = by_oid.get(oid)
            if got is None or got[0] != name or got[1] != "b":
                raise AssertionError(f"base type {name} (oid {oid}): got {got}")
        arr = by_oid.get(1007)
        if arr is None or arr[0] != "_int4" or arr[1] != "a" or int(arr[2]) != 23:
            raise AssertionError(f"array type _int4 (oid 1007): got {arr}")
        orphans = [v[0] for v in by_oid.values() if v[1] == "a" and int(v[2]) not in by_oid]
        if orphans:
            raise AssertionError(f"array types whose element type was not loaded: {orphans[:10]}")
    r.check(C, "type-loading batch (version, pg_type, composites, enums) in one Query", type_loading)

    def discard_all():
        with conn.cursor() as cur:
            cur.execute("DISCARD ALL")
            cur.execute("SELECT n_name FROM tpch.nation WHERE n_nationkey = 7")
            eq(cur.fetchall(), [("GERMANY",)], "query after DISCARD ALL")
    r.check(C, "DISCARD ALL (pooled connection reset), then a query", discard_all)

    def powerbi_navigation():
        with conn.cursor() as cur:
            cur.execute(POWERBI_TABLES)
            tables = {row[1] for row in cur.fetchall() if row[0] == "tpch"}
            eq(tables, TPCH_TABLES, "tpch tables in INFORMATION_SCHEMA.tables")
            cur.execute(POWERBI_COLUMNS)
            cols = [(row[0], row[3]) for row in cur.fetchall()]
        eq([c for c, _ in cols], NATION_COLUMNS, "nation columns")
        pg_names = {"bigint", "integer", "smallint", "text", "character varying", "character", "numeric",
                    "date", "double precision", "real", "boolean", "timestamp without time zone",
                    "timestamp with time zone", "bytea", "interval"}
        bad = [(c, t) for c, t in cols if t not in pg_names]
        if bad:
            raise AssertionError(f"INFORMATION_SCHEMA.columns.data_type is not a PostgreSQL type name: {bad}")
    r.check(C, "Power BI navigation: INFORMATION_SCHEMA.tables/columns with PostgreSQL type names",
            powerbi_navigation)
    conn.close()


# --------------------------------------------------------------------------------------------

CLIENTS = ["psycopg3", "psycopg2", "asyncpg", "sqlalchemy", "pandas", "pgcli", "npgsql"]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default=os.environ.get("PGHOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("PGPORT", "6432")))
    p.add_argument("--user", default=os.environ.get("PGUSER", "admin"))
    p.add_argument("--password", default=os.environ.get("PGPASSWORD", "admin"))
    p.add_argument("--database", default=os.environ.get("PGDATABASE", "lalo"))
    p.add_argument("--only", default="", help="comma-separated subset of: " + ",".join(CLIENTS))
    p.add_argument("--verbose", action="store_true", help="print tracebacks of failures on stderr")
    a = p.parse_args()
    if not a.verbose:  # psycopg logs "error ignored in rollback ..." for failed savepoints; the check reports it
        logging.getLogger("psycopg").setLevel(logging.CRITICAL)
    only = [c for c in a.only.split(",") if c] or CLIENTS
    r = Runner(verbose=a.verbose)
    for client in only:
        if client not in CLIENTS:
            p.error(f"unknown client {client}")
        try:
            if client == "psycopg3":
                run_psycopg3(r, a)
            elif client == "psycopg2":
                run_psycopg2(r, a)
            elif client == "asyncpg":
                asyncio.run(run_asyncpg(r, a))
            elif client == "sqlalchemy":
                run_sqlalchemy(r, a)
            elif client == "pandas":
                run_pandas(r, a)
            elif client == "pgcli":
                run_pgcli(r, a)
            elif client == "npgsql":
                run_npgsql(r, a)
        except Exception as exc:  # a driver missing or a crash outside a check is a failure too
            r._report(client, "client run", exc)
    print(f"# python clients: {r.passes} ok, {r.failures} failed", flush=True)
    sys.exit(1 if r.failures else 0)


if __name__ == "__main__":
    main()
