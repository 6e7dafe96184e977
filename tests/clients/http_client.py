"""lalo's HTTP query API through Python's urllib, requests and pyarrow.

Usage: http_client.py --url http://127.0.0.1:PORT --token TOKEN   (the token maps to analyst)
Prints one "ok <what>" line per check; any failed check raises.
"""
import argparse
import base64
import io
import json
import urllib.error
import urllib.request

import pyarrow.ipc
import requests

p = argparse.ArgumentParser()
p.add_argument("--url", required=True)
p.add_argument("--token", required=True)
args = p.parse_args()


def basic(user):
    return "Basic " + base64.b64encode(f"{user}:{user}".encode()).decode()


def urllib_post(path, body, auth=None, accept=None):
    req = urllib.request.Request(args.url + path, data=json.dumps(body).encode(), method="POST")
    req.add_header("Content-Type", "application/json")
    if auth:
        req.add_header("Authorization", auth)
    if accept:
        req.add_header("Accept", accept)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


# urllib: rows, a row filter, a mask, a denial, no credentials.
code, body = urllib_post("/v1/sql", {"sql": "SELECT count(*) AS n FROM tpch.orders"}, basic("admin"))
assert code == 200, body
all_orders = json.loads(body)["rows"][0][0]
code, body = urllib_post("/v1/sql", {"sql": "SELECT count(*) AS n FROM tpch.orders"}, basic("analyst"))
doc = json.loads(body)
assert code == 200 and doc["columns"] == [{"name": "n", "type": "int8"}], doc
assert 0 < doc["rows"][0][0] < all_orders, (doc, all_orders)
print("ok urllib: row filter", doc["rows"][0][0], "of", all_orders)

code, body = urllib_post("/v1/sql", {"sql": "SELECT c_phone FROM tpch.customer ORDER BY c_custkey LIMIT 3"}, basic("analyst"))
phones = [r[0] for r in json.loads(body)["rows"]]
assert code == 200 and len(phones) == 3 and all(ph.startswith("*") for ph in phones), phones
print("ok urllib: masked column")

code, body = urllib_post("/v1/sql", {"sql": "SELECT c_acctbal FROM tpch.customer"}, basic("intern"))
err = json.loads(body)
assert code == 403 and err["sqlstate"] == "42501", (code, err)
print("ok urllib: denied column gives 403 42501")

code, body = urllib_post("/v1/sql", {"sql": "SELECT 1"})
assert code == 401 and json.loads(body)["sqlstate"] == "28P01", (code, body)
code, body = urllib_post("/v1/sql", {"sql": "SELECT 1"}, "Basic " + base64.b64encode(b"analyst:nope").decode())
assert code == 401, (code, body)
print("ok urllib: no or wrong credentials give 401")

code, body = urllib_post("/v1/sql", {"sql": "SELEC 1"}, basic("admin"))
assert code == 400 and json.loads(body)["sqlstate"] == "42601", (code, body)
code, body = urllib_post("/v1/sql", {"sql": "SELECT * FROM nowhere"}, basic("admin"))
assert code == 400 and json.loads(body)["sqlstate"] == "42P01", (code, body)
print("ok urllib: syntax and missing relation give 400")

# requests: a bearer token, parameters, NDJSON streamed.
s = requests.Session()
s.headers["Authorization"] = "Bearer " + args.token
r = s.post(args.url + "/v1/sql", json={"sql": "SELECT n_name, n_nationkey FROM tpch.nation WHERE n_nationkey < $1 AND n_name <> $2 ORDER BY 2", "params": [3, "ARGENTINA"]})
assert r.status_code == 200, r.text
assert r.json()["rows"] == [["ALGERIA", 0], ["BRAZIL", 2]], r.json()
print("ok requests: bearer token and parameters")

r = s.post(args.url + "/v1/sql", json={"sql": "SELECT c_custkey, c_phone FROM tpch.customer ORDER BY 1 LIMIT 5"}, headers={"Accept": "application/x-ndjson"}, stream=True)
assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson"), r.headers
lines = [json.loads(l) for l in r.iter_lines() if l]
assert len(lines) == 5 and lines[0]["c_custkey"] == 1 and lines[0]["c_phone"].startswith("*"), lines
print("ok requests: NDJSON rows, masked")

r = s.post(args.url + "/v1/explain", json={"sql": "SELECT count(*) FROM tpch.orders"})
assert r.status_code == 200 and r.json()["decision"] in ("filtered", "allowed"), r.text
print("ok requests: explain", r.json()["decision"])

# pyarrow: the Arrow IPC stream, batch by batch.
r = s.post(args.url + "/v1/sql", json={"sql": "SELECT o_orderkey, o_totalprice FROM tpch.orders ORDER BY 1"}, headers={"Accept": "application/vnd.apache.arrow.stream"})
assert r.status_code == 200, r.text
table = pyarrow.ipc.open_stream(io.BytesIO(r.content)).read_all()
assert table.column_names == ["o_orderkey", "o_totalprice"], table.schema
code, body = urllib_post("/v1/sql", {"sql": "SELECT count(*) FROM tpch.orders"}, basic("analyst"))
assert table.num_rows == json.loads(body)["rows"][0][0], table.num_rows
print("ok pyarrow: Arrow stream of", table.num_rows, "filtered rows")
