"""lalo's Arrow Flight SQL through ADBC's Flight SQL driver and pyarrow.flight.

Usage: flight_client.py --uri grpc://127.0.0.1:PORT
Prints one "ok <what>" line per check; any failed check raises.
"""
import argparse
import warnings

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow.flight as flight

warnings.simplefilter("ignore")
p = argparse.ArgumentParser()
p.add_argument("--uri", required=True)
args = p.parse_args()


def connect(user, password=None):
    return flightsql.connect(args.uri, db_kwargs={"username": user, "password": password or user})


with connect("admin") as conn, conn.cursor() as cur:
    cur.execute("SELECT count(*) AS n FROM tpch.orders")
    all_orders = cur.fetch_arrow_table().column("n")[0].as_py()

with connect("analyst") as conn, conn.cursor() as cur:
    cur.execute("SELECT o_orderkey, o_totalprice FROM tpch.orders ORDER BY 1")
    t = cur.fetch_arrow_table()
    assert t.column_names == ["o_orderkey", "o_totalprice"] and 0 < t.num_rows < all_orders, (t.schema, t.num_rows)
    print("ok adbc-flightsql: row filter", t.num_rows, "of", all_orders)
    cur.execute("SELECT c_custkey, c_phone FROM tpch.customer WHERE c_custkey < ? ORDER BY 1", parameters=(4,))
    rows = cur.fetch_arrow_table().to_pylist()
    assert [r["c_custkey"] for r in rows] == [1, 2, 3] and all(r["c_phone"].startswith("*") for r in rows), rows
    print("ok adbc-flightsql: prepared statement with a parameter, masked column")
    objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
    tables = {(o["catalog_name"], s["db_schema_name"], t["table_name"]) for o in objects for s in o["catalog_db_schemas"] for t in s["db_schema_tables"]}
    assert ("lalo", "tpch", "customer") in tables, tables
    print("ok adbc-flightsql: catalog objects", len(tables))

with connect("intern") as conn, conn.cursor() as cur:
    try:
        cur.execute("SELECT c_acctbal FROM tpch.customer")
        cur.fetch_arrow_table()
        raise AssertionError("the denied column was read")
    except flightsql.ProgrammingError as e:
        assert "42501" in str(e), e
        print("ok adbc-flightsql: denied column gives 42501")
    names = conn.adbc_get_table_schema("customer", db_schema_filter="tpch", catalog_filter="lalo").names
    assert "c_acctbal" not in names and "c_name" in names, names
    print("ok adbc-flightsql: table schema without the denied column")

try:
    connect("intern", "wrong")
    raise AssertionError("a wrong password connected")
except flightsql.Error as e:
    assert "28P01" in str(e), e
    print("ok adbc-flightsql: wrong password refused")

# pyarrow.flight: Basic handshake, then the token on each call.
client = flight.FlightClient(args.uri)
token = client.authenticate_basic_token("analyst", "analyst")
options = flight.FlightCallOptions(headers=[token])
# A Flight SQL statement command, packed as the protocol's Any (CommandStatementQuery, field 1).
query = "SELECT n_name FROM tpch.nation ORDER BY n_name LIMIT 3".encode()
command = b"\x0a" + bytes([len(query)]) + query
any_msg = b"\x0a" + bytes([len("type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery")]) + b"type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery" + b"\x12" + bytes([len(command)]) + command
info = client.get_flight_info(flight.FlightDescriptor.for_command(any_msg), options)
table = client.do_get(info.endpoints[0].ticket, options).read_all()
assert table.column("n_name").to_pylist() == ["ALGERIA", "ARGENTINA", "BRAZIL"], table
print("ok pyarrow.flight: statement through a handshake token")
