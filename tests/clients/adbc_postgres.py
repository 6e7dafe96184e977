"""lalo through ADBC's PostgreSQL driver, which reads results with COPY ... TO STDOUT (FORMAT binary).

Usage: adbc_postgres.py --port PORT
Prints one "ok <what>" line per check; any failed check raises.
"""
import argparse

import adbc_driver_postgresql.dbapi as adbc

p = argparse.ArgumentParser()
p.add_argument("--port", required=True)
args = p.parse_args()


def connect(user):
    return adbc.connect(f"postgresql://{user}:{user}@127.0.0.1:{args.port}/lalo?sslmode=disable")


with connect("admin") as conn, conn.cursor() as cur:
    cur.execute("SELECT count(*) AS n FROM tpch.orders")
    all_orders = cur.fetch_arrow_table().column("n")[0].as_py()

with connect("analyst") as conn, conn.cursor() as cur:
    cur.execute("SELECT o_orderkey, o_totalprice, o_orderdate FROM tpch.orders ORDER BY o_orderkey")
    t = cur.fetch_arrow_table()
    assert t.column_names == ["o_orderkey", "o_totalprice", "o_orderdate"], t.schema
    assert 0 < t.num_rows < all_orders, (t.num_rows, all_orders)
    print("ok adbc: row filter", t.num_rows, "of", all_orders)
    cur.execute("SELECT c_custkey, c_phone FROM tpch.customer ORDER BY c_custkey LIMIT 3")
    t = cur.fetch_arrow_table()
    phones = t.column("c_phone").to_pylist()
    assert len(phones) == 3 and all(ph.startswith("*") for ph in phones), phones
    print("ok adbc: masked column")

with connect("intern") as conn, conn.cursor() as cur:
    try:
        cur.execute("SELECT c_acctbal FROM tpch.customer")
        cur.fetch_arrow_table()
        raise AssertionError("the denied column was read")
    except adbc.ProgrammingError as e:
        assert "42501" in str(e) or "permission denied" in str(e), e
        print("ok adbc: denied column gives 42501")

with connect("analyst") as conn, conn.cursor() as cur:
    cur.execute("SELECT n_name FROM tpch.nation WHERE n_nationkey < 0")
    t = cur.fetch_arrow_table()
    assert t.num_rows == 0 and t.column_names == ["n_name"], t
    print("ok adbc: empty result")
