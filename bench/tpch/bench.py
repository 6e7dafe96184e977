#!/usr/bin/env python3
"""bench/tpch: the 22 TPC-H queries on lalo (over the wire), DataFusion in-process, DuckDB and
PostgreSQL 15, on the same data; checks every engine returns the same rows, prints a table of median
times and writes it as markdown and a bar chart. run.sh starts the servers and calls this script."""

import argparse
import datetime
import decimal
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import psycopg

TABLES = ["region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem"]

# PostgreSQL DDL with the types lalo serves (src/engine/tpch.rs): keys BIGINT, money NUMERIC(15,2),
# dates DATE, text TEXT (not CHAR(n), whose blank padding would change the compared rows).
PG_DDL = {
    "region": "r_regionkey bigint not null, r_name text not null, r_comment text not null",
    "nation": "n_nationkey bigint not null, n_name text not null, n_regionkey bigint not null, n_comment text not null",
    "supplier": "s_suppkey bigint not null, s_name text not null, s_address text not null, s_nationkey bigint not null, "
    "s_phone text not null, s_acctbal numeric(15,2) not null, s_comment text not null",
    "customer": "c_custkey bigint not null, c_name text not null, c_address text not null, c_nationkey bigint not null, "
    "c_phone text not null, c_acctbal numeric(15,2) not null, c_mktsegment text not null, c_comment text not null",
    "part": "p_partkey bigint not null, p_name text not null, p_mfgr text not null, p_brand text not null, "
    "p_type text not null, p_size integer not null, p_container text not null, p_retailprice numeric(15,2) not null, "
    "p_comment text not null",
    "partsupp": "ps_partkey bigint not null, ps_suppkey bigint not null, ps_availqty integer not null, "
    "ps_supplycost numeric(15,2) not null, ps_comment text not null",
    "orders": "o_orderkey bigint not null, o_custkey bigint not null, o_orderstatus text not null, "
    "o_totalprice numeric(15,2) not null, o_orderdate date not null, o_orderpriority text not null, "
    "o_clerk text not null, o_shippriority integer not null, o_comment text not null",
    "lineitem": "l_orderkey bigint not null, l_partkey bigint not null, l_suppkey bigint not null, "
    "l_linenumber integer not null, l_quantity numeric(15,2) not null, l_extendedprice numeric(15,2) not null, "
    "l_discount numeric(15,2) not null, l_tax numeric(15,2) not null, l_returnflag text not null, "
    "l_linestatus text not null, l_shipdate date not null, l_commitdate date not null, l_receiptdate date not null, "
    "l_shipinstruct text not null, l_shipmode text not null, l_comment text not null",
}

# Primary keys, and indexes on the foreign keys and the columns the correlated subqueries probe
# (Q2 partsupp by part, Q17 lineitem by part, Q20 lineitem by part and supplier, Q21 lineitem by
# order, Q22 orders by customer).
PG_INDEXES = [
    "alter table tpch.region add primary key (r_regionkey)",
    "alter table tpch.nation add primary key (n_nationkey)",
    "alter table tpch.supplier add primary key (s_suppkey)",
    "alter table tpch.customer add primary key (c_custkey)",
    "alter table tpch.part add primary key (p_partkey)",
    "alter table tpch.partsupp add primary key (ps_partkey, ps_suppkey)",
    "alter table tpch.orders add primary key (o_orderkey)",
    "alter table tpch.lineitem add primary key (l_orderkey, l_linenumber)",
    "create index on tpch.nation (n_regionkey)",
    "create index on tpch.supplier (s_nationkey)",
    "create index on tpch.customer (c_nationkey)",
    "create index on tpch.partsupp (ps_suppkey)",
    "create index on tpch.orders (o_custkey)",
    "create index on tpch.orders (o_orderdate)",
    "create index on tpch.lineitem (l_partkey, l_suppkey)",
    "create index on tpch.lineitem (l_suppkey)",
    "create index on tpch.lineitem (l_shipdate)",
]

ENGINES = ["lalo", "lalo-ballista", "datafusion", "duckdb", "postgresql"]
LABEL = {"lalo": "lalo", "lalo-ballista": "lalo on Ballista", "datafusion": "DataFusion", "duckdb": "DuckDB",
         "postgresql": "PostgreSQL"}


def say(*a):
    print("bench/tpch:", *a, file=sys.stderr, flush=True)


def median(xs):
    return statistics.median(xs) if xs else None


# --- loading ---------------------------------------------------------------------------------------

def load_postgres(dsn, parquet_dir, scratch):
    """Copy the Parquet files into PostgreSQL through CSV (DuckDB writes it, COPY reads it), then
    add keys and indexes, VACUUM ANALYZE."""
    t0 = time.time()
    csv_dir = Path(scratch) / "csv"
    csv_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(csv_dir, 0o755)
    con = duckdb.connect()
    with psycopg.connect(dsn, autocommit=True) as pg:
        pg.execute("drop schema if exists tpch cascade")
        pg.execute("create schema tpch")
        for t in TABLES:
            csv = csv_dir / f"{t}.csv"
            con.execute(f"copy (select * from read_parquet('{parquet_dir}/{t}.parquet')) to '{csv}' (format csv, header false)")
            os.chmod(csv, 0o644)
            pg.execute(f"create table tpch.{t} ({PG_DDL[t]})")
            pg.execute(f"copy tpch.{t} from '{csv}' with (format csv)")
            csv.unlink()
            say(f"  postgresql: loaded {t}")
        for stmt in PG_INDEXES:
            pg.execute(stmt)
        say("  postgresql: keys and indexes built")
        pg.execute("vacuum analyze")
    con.close()
    say(f"  postgresql: loaded in {time.time() - t0:.0f} s")


def load_duckdb(path, parquet_dir):
    """DuckDB's own tables (its native storage, as users run it), filled from the same Parquet files."""
    t0 = time.time()
    if os.path.exists(path):
        os.remove(path)
    con = duckdb.connect(path)
    con.execute("create schema tpch")
    for t in TABLES:
        con.execute(f"create table tpch.{t} as select * from read_parquet('{parquet_dir}/{t}.parquet')")
    con.execute("checkpoint")
    con.close()
    say(f"  duckdb: loaded in {time.time() - t0:.0f} s")


# --- running ----------------------------------------------------------------------------------------
#
# Each engine is an object with run(name, sql) -> (seconds, rows) and warm(name, sql). The engines
# take turns query by query and run by run (the order rotates each round), so a burst of other work on
# the machine lands on all of them alike instead of on whichever engine happened to be running.

class QueryError(Exception):
    pass


class Psycopg:
    """A real client over the wire: psycopg 3, text results, every row fetched into Python objects."""

    def __init__(self, dsn, timeout_s=0):
        self.conn = psycopg.connect(dsn, autocommit=True)
        if timeout_s:
            self.conn.execute(f"set statement_timeout = '{int(timeout_s)}s'")

    def run(self, name, sql):
        try:
            t0 = time.perf_counter()
            with self.conn.cursor() as cur:
                cur.execute(sql)
                rows = cur.fetchall()
            return time.perf_counter() - t0, rows
        except psycopg.Error as e:
            state = getattr(e, "sqlstate", None)
            raise QueryError(f"{state or ''} {str(e).strip()}".strip().splitlines()[0]) from e

    warm = run

    def close(self):
        self.conn.close()


class DuckDB:
    def __init__(self, path):
        self.con = duckdb.connect(path, read_only=True)

    def run(self, name, sql):
        try:
            t0 = time.perf_counter()
            rows = self.con.execute(sql).fetchall()
            return time.perf_counter() - t0, rows
        except duckdb.Error as e:
            raise QueryError(str(e).splitlines()[0]) from e

    warm = run

    def close(self):
        self.con.close()


class DataFusion:
    """The standalone runner (datafusion-runner/) in its --serve mode: one long-lived process (warm
    caches, as in a server) with the same Parquet files and lalo's session settings; it times each
    run itself, around ctx.sql(..).collect(), and writes the rows to Parquet for the row check."""

    def __init__(self, runner, parquet_dir, queries_dir, scratch):
        self.res_dir = Path(scratch) / "datafusion-results"
        self.proc = subprocess.Popen(
            [runner, "--data", str(parquet_dir), "--queries", str(queries_dir), "--results", str(self.res_dir),
             "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.duck = duckdb.connect()

    def run(self, name, sql):
        self.proc.stdin.write(name + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise QueryError(f"the DataFusion runner exited ({self.proc.poll()})")
        r = json.loads(line)
        if r["error"]:
            raise QueryError(r["error"].splitlines()[0])
        rows = self.duck.execute(f"select * from read_parquet('{self.res_dir}/{name}.parquet')").fetchall()
        return r["times"][0], rows

    warm = run

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()
        self.duck.close()


def run_all(engines, objs, queries, runs, warmup):
    res = {e: {} for e in engines}
    for name, sql in queries:
        live = []
        for e in engines:
            res[e][name] = {"times": [], "rows": None, "error": None}
            try:
                for _ in range(warmup):
                    out = objs[e].warm(name, sql)
                    if out is not None:
                        res[e][name]["rows"] = out[1]
                live.append(e)
            except QueryError as err:
                res[e][name]["error"] = str(err)
                say(f"  {name} {LABEL[e]}: ERROR {err}")
        for r in range(runs):
            order = live[r % len(live):] + live[:r % len(live)] if live else []
            for e in order:
                if res[e][name]["error"]:
                    continue
                try:
                    secs, rows = objs[e].run(name, sql)
                    res[e][name]["times"].append(secs)
                    res[e][name]["rows"] = rows
                except QueryError as err:
                    res[e][name]["error"] = str(err)
                    res[e][name]["times"] = []
                    say(f"  {name} {LABEL[e]}: ERROR {err}")
        for e in engines:
            if res[e][name]["error"]:
                res[e][name]["rows"] = None
        say(f"  {name}: " + ", ".join(
            f"{LABEL[e]} {median(res[e][name]['times']):.3f} s" if res[e][name]["times"] else f"{LABEL[e]} error"
            for e in engines) + f" ({len(next((res[e][name]['rows'] for e in engines if res[e][name]['rows'] is not None), []))} rows)")
    return res


# --- row check ---------------------------------------------------------------------------------------

def norm_value(v, places):
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, (int, float, decimal.Decimal)):
        q = decimal.Decimal(1).scaleb(-places)
        return decimal.Decimal(str(v)).quantize(q, rounding=decimal.ROUND_HALF_EVEN)
    if isinstance(v, (datetime.date, datetime.datetime)):
        return v.isoformat()
    return str(v)


def norm_rows(rows, places):
    return [tuple(norm_value(v, places) for v in r) for r in rows]


def values_match(a, b, places):
    if isinstance(a, decimal.Decimal) and isinstance(b, decimal.Decimal):
        # Rounded to `places` decimals; one unit in the last place apart is a rounding-boundary
        # difference (an exact decimal vs a double average), not a different answer.
        return abs(a - b) <= decimal.Decimal(1).scaleb(-places)
    return a == b


def rows_match(x, y, places):
    return len(x) == len(y) and all(
        len(r) == len(s) and all(values_match(a, b, places) for a, b in zip(r, s)) for r, s in zip(x, y))


def sort_key(row):
    return tuple((v is None, str(type(v)), v if v is not None else 0) for v in row)


def compare(ref, other, ordered, places):
    """None if the rows match, else a one-line description of the first difference."""
    a, b = norm_rows(ref, places), norm_rows(other, places)
    if not ordered:
        a, b = sorted(a, key=sort_key), sorted(b, key=sort_key)
    if rows_match(a, b, places):
        return None
    if len(a) != len(b):
        return f"{len(b)} rows, reference has {len(a)}"
    if ordered and rows_match(sorted(a, key=sort_key), sorted(b, key=sort_key), places):
        return "same rows in a different order"
    for i, (r, s) in enumerate(zip(a, b)):
        if not (len(r) == len(s) and all(values_match(x, y, places) for x, y in zip(r, s))):
            return f"row {i + 1}: {tuple(map(str, s))} vs reference {tuple(map(str, r))}"
    return "differs"


# --- report -------------------------------------------------------------------------------------------

def fmt_s(x):
    return "error" if x is None else f"{x:.3f}"


def ratio(a, b):
    return None if not a or not b else a / b


def fmt_r(x):
    return "–" if x is None else f"{x:.2f}"


def machine_info():
    cpu = platform.processor() or ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) // 1024 // 1024} GiB"
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), {mem} RAM, {platform.system()} {platform.release()}"


def write_chart(path, names, med, engines, title, totals):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    fig, ax = plt.subplots(figsize=(14, 5.5))
    width = 0.8 / len(engines)
    colors = {"lalo": "#d62728", "lalo-ballista": "#9467bd", "datafusion": "#ff9f1c", "duckdb": "#2a9d8f", "postgresql": "#336791"}
    for i, e in enumerate(engines):
        xs = [j + (i - (len(engines) - 1) / 2) * width for j in range(len(names))]
        ys = [med[e].get(n) or 0 for n in names]
        ax.bar(xs, ys, width, label=f"{LABEL[e]} (total {totals[e]:.2f} s)", color=colors[e])
    ax.set_yscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(FuncFormatter(
        lambda v, _: f"{v:g}" if v > 0 and round(v / 10 ** math.floor(math.log10(v))) in (2, 5) else ""))
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([n.upper() for n in names])
    ax.set_ylabel("seconds (median, log scale)")
    ax.set_title(title)
    ax.legend()
    ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--scale", required=True)
    p.add_argument("--parquet-dir", required=True)
    p.add_argument("--queries-dir", required=True)
    p.add_argument("--scratch", required=True)
    p.add_argument("--results-dir", required=True)
    p.add_argument("--runner", required=True)
    p.add_argument("--lalo-dsn", required=True)
    p.add_argument("--pg-dsn", required=True)
    p.add_argument("--lalo-ballista-dsn", default="", help="a lalo with [engine] distributed = standalone")
    p.add_argument("--engines", default=",".join(ENGINES))
    p.add_argument("--queries", default="", help="comma-separated subset, e.g. q01,q06")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--decimals", type=int, default=2)
    p.add_argument("--pg-timeout", type=int, default=600)
    p.add_argument("--meta", default="{}", help="JSON: versions and settings for the report")
    a = p.parse_args()

    engines = [e for e in a.engines.split(",") if e]
    for e in engines:
        if e not in ENGINES:
            sys.exit(f"unknown engine {e}")
    qdir = Path(a.queries_dir)
    files = sorted(qdir.glob("q*.sql"))
    if a.queries:
        wanted = set(a.queries.split(","))
        files = [f for f in files if f.stem in wanted]
    queries = [(f.stem, f.read_text()) for f in files]
    names = [n for n, _ in queries]
    meta = json.loads(a.meta)
    scratch = Path(a.scratch)
    duck_path = str(scratch / "bench.duckdb")  # not tpch.duckdb: the catalog name would clash with schema tpch

    say(f"scale {a.scale}, {len(queries)} queries, {a.runs} timed runs after {a.warmup} warm-up, engines {engines}")
    if "postgresql" in engines:
        say("loading PostgreSQL")
        load_postgres(a.pg_dsn, a.parquet_dir, scratch)
    if "duckdb" in engines:
        say("loading DuckDB")
        load_duckdb(duck_path, a.parquet_dir)

    objs = {}
    for e in engines:
        if e == "lalo":
            objs[e] = Psycopg(a.lalo_dsn)
        elif e == "lalo-ballista":
            objs[e] = Psycopg(a.lalo_ballista_dsn)
        elif e == "postgresql":
            objs[e] = Psycopg(a.pg_dsn, a.pg_timeout)
        elif e == "duckdb":
            objs[e] = DuckDB(duck_path)
        else:
            objs[e] = DataFusion(a.runner, a.parquet_dir, qdir, scratch)
    say("running the queries, engines taking turns: " + ", ".join(LABEL[e] for e in engines))
    load_before = os.getloadavg()[0]
    t_run = time.time()
    res = run_all(engines, objs, queries, a.runs, a.warmup)
    load_note = (f"load average {load_before:.1f} before the queries, {os.getloadavg()[0]:.1f} after "
                 f"({time.time() - t_run:.0f} s of queries); other work on the machine slows every engine alike "
                 "because they take turns")
    for o in objs.values():
        o.close()

    # Row check against one reference engine (PostgreSQL when it answered, else the next one).
    checks, mismatches = {}, []
    for name, sql in queries:
        ordered = re.search(r"\border\s+by\b", re.sub(r"--[^\n]*", "", sql), re.I) is not None
        ok = [e for e in ["postgresql", "duckdb", "datafusion", "lalo", "lalo-ballista"] if e in res and res[e][name]["rows"] is not None]
        if not ok:
            checks[name] = "no engine answered"
            continue
        ref = ok[0]
        bad = []
        for e in ok[1:]:
            d = compare(res[ref][name]["rows"], res[e][name]["rows"], ordered, a.decimals)
            if d:
                bad.append(e)
                mismatches.append(f"{name}: {LABEL[e]} differs from {LABEL[ref]}: {d}")
        failed = [e for e in engines if res[e][name]["rows"] is None]
        if bad:
            checks[name] = "MISMATCH " + ", ".join(LABEL[e] for e in bad)
        elif len(ok) == 1:
            checks[name] = "only " + LABEL[ref] + " answered"
        else:
            checks[name] = "same" + (" (" + ", ".join(LABEL[e] for e in failed) + " failed)" if failed else "")

    med = {e: {n: median(res[e][n]["times"]) for n in names} for e in engines}
    nrows = {n: next((len(res[e][n]["rows"]) for e in engines if res[e][n]["rows"] is not None), None) for n in names}

    # Totals over the queries every engine answered, so each ratio compares the same work.
    common = [n for n in names if all(med[e][n] is not None for e in engines)]
    total = {e: sum(med[e][n] for n in common) for e in engines}

    cols = engines + [f"lalo/{e}" for e in engines if e != "lalo" and "lalo" in engines]
    head = ["query"] + [LABEL[e] if "/" not in e else "lalo/" + LABEL[e.split("/")[1]] for e in cols] + ["rows", "rows check"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(cols) + 1) + ["---"]) + "|"]
    for n in names:
        cells = [n.upper()]
        for c in cols:
            if "/" in c:
                cells.append(fmt_r(ratio(med["lalo"][n], med[c.split("/")[1]][n])))
            else:
                cells.append(fmt_s(med[c][n]))
        cells += [str(nrows[n]) if nrows[n] is not None else "–", checks[n]]
        lines.append("| " + " | ".join(cells) + " |")
    cells = [f"**total** ({len(common)} queries)"]
    for c in cols:
        if "/" in c:
            cells.append("**" + fmt_r(ratio(total["lalo"], total[c.split("/")[1]])) + "**")
        else:
            cells.append(f"**{total[c]:.3f}**")
    cells += ["", ""]
    lines.append("| " + " | ".join(cells) + " |")
    table = "\n".join(lines)

    errors = [f"{n}: {LABEL[e]}: {res[e][n]['error']}" for n in names for e in engines if res[e][n]["error"]]

    print()
    print(f"TPC-H SF{a.scale}: median of {a.runs} runs after {a.warmup} warm-up, seconds; {machine_info()}")
    print(table)
    if "lalo" in engines:
        for e in engines:
            if e != "lalo":
                print(f"total lalo/{LABEL[e]}: {fmt_r(ratio(total['lalo'], total[e]))}")
    for m in mismatches:
        print("MISMATCH " + m)
    for er in errors:
        print("ERROR " + er)
    if not mismatches:
        print("rows: every engine that answered returned the same rows for every query")

    out_dir = Path(a.results_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"tpch-sf{a.scale}"
    md = [f"# TPC-H SF{a.scale}: " + ", ".join(LABEL[e] for e in engines), "",
          f"Written by `bench/tpch/run.sh {a.scale}` on {datetime.date.today().isoformat()}; see `bench/README.md` "
          "for what is measured and how.", "",
          f"- machine: {machine_info()}",
          f"- median of {a.runs} timed runs after {a.warmup} warm-up run(s) per query, in seconds; engines take turns "
          "query by query and run by run",
          f"- {load_note}"]
    for k, v in meta.items():
        md.append(f"- {k}: {v}")
    md += ["", table, ""]
    if "lalo" in engines:
        md.append("Total ratios (over the queries every engine answered): " + ", ".join(
            f"lalo/{LABEL[e]} **{fmt_r(ratio(total['lalo'], total[e]))}**" for e in engines if e != "lalo") + ".")
        md.append("")
    md.append("Rows: " + ("every engine that answered returned the same rows for every query "
                          f"(numbers rounded to {a.decimals} decimals; ordered comparison where the query has ORDER BY)."
                          if not mismatches else "mismatches:"))
    for m in mismatches:
        md.append(f"- {m}")
    if errors:
        md += ["", "Errors:"] + [f"- {er}" for er in errors]
    md += ["", f"![per-query times]({stem}.png)", ""]
    (out_dir / f"{stem}.md").write_text("\n".join(md))
    raw = {"scale": a.scale, "runs": a.runs, "warmup": a.warmup, "machine": machine_info(), "meta": meta,
           "times": {e: {n: res[e][n]["times"] for n in names} for e in engines},
           "errors": {e: {n: res[e][n]["error"] for n in names if res[e][n]["error"]} for e in engines},
           "checks": checks}
    (out_dir / f"{stem}.json").write_text(json.dumps(raw, indent=1) + "\n")
    write_chart(out_dir / f"{stem}.png", names, med, engines,
                f"TPC-H SF{a.scale}, median seconds per query ({machine_info().split(' (')[0]})", total)
    say(f"wrote {out_dir / (stem + '.md')}, {stem}.json, {stem}.png")


if __name__ == "__main__":
    main()
