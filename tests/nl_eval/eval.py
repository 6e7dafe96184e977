#!/usr/bin/env python3
"""Score lalo's `rules` drafter on the defog corpus against a throwaway PostgreSQL 15.

Steps: write the questions as JSON lines, have lalo draft SQL for each (the ignored test
`nl_rules::defog_drafts`, or any command given with --drafter), start PostgreSQL in a temp dir
(as the `postgres` user when run as root), load the seven databases, run gold and drafted SQL,
and score them by the corpus rules (column alternatives, `;`-separated golds, row sets, order
only when asked, extra predicted columns allowed).

    python3 tests/nl_eval/eval.py [--drafter 'CMD {root} {input} {output}'] [--show-failures]
"""
import argparse, csv, itertools, json, os, re, shutil, subprocess, sys, tempfile, time
from collections import defaultdict
from decimal import Decimal

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(os.path.dirname(REPO), "shared", "corpora", "defog")
PG = "/usr/lib/postgresql/15/bin"
DBS = ["academic", "advising", "atis", "geography", "restaurants", "scholar", "yelp"]


def as_postgres(cmd):
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--"] + cmd
    return cmd


class Cluster:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="lalo-nl-eval-")
        os.chmod(self.dir, 0o777)
        self.data = os.path.join(self.dir, "data")
        self.port = 55000 + os.getpid() % 5000
        subprocess.run(as_postgres([f"{PG}/initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"]),
                       check=True, stdout=subprocess.DEVNULL)
        subprocess.run(as_postgres([f"{PG}/pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "log"), "-w", "-o",
                                    f"-p {self.port} -k {self.dir} -c listen_addresses=''", "start"]), check=True, stdout=subprocess.DEVNULL)

    def dsn(self, db):
        return f"host={self.dir} port={self.port} user=postgres dbname={db}"

    def stop(self):
        subprocess.run(as_postgres([f"{PG}/pg_ctl", "-D", self.data, "-m", "fast", "stop"]), stdout=subprocess.DEVNULL)
        shutil.rmtree(self.dir, ignore_errors=True)


def expand(gold):
    """Every query a gold field stands for: `;`-separated queries times non-empty subsets of `{a, b}`."""
    out = []
    for q in [q.strip() for q in gold.split(";") if q.strip()]:
        braces = re.findall(r"\{([^}]*)\}", q)
        alts = [b for b in braces if b.strip()]
        if not alts:
            out.append(q)
            continue
        cols = [c.strip() for c in alts[0].split(",")]
        for k in range(1, len(cols) + 1):
            for subset in itertools.combinations(cols, k):
                text = ", ".join(subset)
                out.append(q.replace("{" + alts[0] + "}", text).replace("{}", text))
    return out


def asks_order(question):
    """The corpus rule: rows are compared in order when the question asks for one."""
    return bool(re.search(r"\b(order|ordered|sort|sorted|arrange|arranged|rank|ranked|top|highest|lowest)\b", question.lower()))


def norm(v):
    if v is None:
        return None
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (int, float, Decimal)):
        f = float(v)
        return round(f, 4) if abs(f) < 1e12 else f
    if hasattr(v, "total_seconds"):
        return round(v.total_seconds(), 4)
    return str(v).strip()


def key(v):
    return (0, v) if isinstance(v, (int, float)) else (1, str(v)) if v is not None else (2, "")


def dedupe(rows):
    seen, out = set(), []
    for r in rows:
        if r not in seen:
            seen.add(r)
            out.append(r)
    return out


def matches(gold, pred, ordered):
    """defog's rule: every gold column has a distinct predicted column with the same values; rows then equal."""
    if not gold or not gold[0]:
        return not pred
    g = dedupe(gold)
    pred = dedupe(pred)
    if not pred:
        return False
    ng, npred = len(g[0]), len(pred[0])
    gcols = [[r[i] for r in g] for i in range(ng)]
    pcols = [[r[i] for r in pred] for i in range(npred)]
    # Try column assignments (small: at most a few columns).
    def col_eq(a, b):
        return sorted(a, key=key) == sorted(b, key=key)
    cand = [[j for j in range(npred) if col_eq(gcols[i], pcols[j])] for i in range(ng)]
    for assign in itertools.product(*cand):
        if len(set(assign)) < ng:
            continue
        proj = dedupe([tuple(r[j] for j in assign) for r in pred])
        if ordered:
            if proj == g:
                return True
        elif sorted(proj, key=lambda r: [key(x) for x in r]) == sorted(g, key=lambda r: [key(x) for x in r]):
            return True
    return False


def run(conn, sql):
    with conn.cursor() as cur:
        cur.execute("SET statement_timeout = 10000")
        cur.execute(sql)
        rows = cur.fetchall() if cur.description else []
        return [tuple(norm(v) for v in r) for r in rows]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--drafter", help="command drafting SQL, with {root} {input} {output}")
    ap.add_argument("--show-failures", action="store_true")
    ap.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "lalo-nl-eval"))
    args = ap.parse_args()
    import psycopg

    os.makedirs(args.out, exist_ok=True)
    questions = [dict(r, kind="answerable") for r in csv.DictReader(open(os.path.join(CORPUS, "questions.csv")))]
    questions += [dict(r, kind="unanswerable") for r in csv.DictReader(open(os.path.join(CORPUS, "unanswerable.csv")))]
    inp, outp = os.path.join(args.out, "questions.jsonl"), os.path.join(args.out, "drafts.jsonl")
    with open(inp, "w") as f:
        for i, q in enumerate(questions):
            f.write(json.dumps({"id": i, "db": q["db_name"], "question": q["question"]}) + "\n")
    root = os.path.join(CORPUS, "data")
    if args.drafter:
        cmd = args.drafter.format(root=root, input=inp, output=outp)
        subprocess.run(cmd, shell=True, check=True)
    else:
        env = dict(os.environ, LALO_NL_EVAL_ROOT=root, LALO_NL_EVAL_IN=inp, LALO_NL_EVAL_OUT=outp)
        subprocess.run(["cargo", "test", "--test", "it", "nl_rules::defog_drafts", "--", "--ignored", "--exact"], cwd=REPO, env=env, check=True)
    drafts = {d["id"]: d for d in map(json.loads, open(outp))}

    cluster = Cluster()
    try:
        conns = {}
        with psycopg.connect(cluster.dsn("postgres"), autocommit=True) as admin:
            for db in DBS:
                admin.execute(f"CREATE DATABASE {db}")
        for db in DBS:
            subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", "-h", cluster.dir, "-p", str(cluster.port), "-U", "postgres", "-d", db,
                            "-f", os.path.join(root, db, f"{db}.sql")], check=True, stdout=subprocess.DEVNULL)
            conns[db] = psycopg.connect(cluster.dsn(db), autocommit=True)
        stats = defaultdict(lambda: [0, 0, 0])  # correct, drafted, total
        declined_unans, total_unans, micros, failures = 0, 0, [], []
        for i, q in enumerate(questions):
            d = drafts.get(i, {})
            micros.append(d.get("micros", 0))
            if q["kind"] == "unanswerable":
                total_unans += 1
                declined_unans += "sql" not in d
                if "sql" in d and args.show_failures:
                    failures.append(("UNANSWERED", q, d.get("sql"), ""))
                continue
            db, cat = q["db_name"], q["query_category"]
            ok, err = False, ""
            if "sql" in d:
                try:
                    pred = run(conns[db], d["sql"])
                    ordered = asks_order(q["question"])
                    for g in expand(q["query"]):
                        try:
                            if matches(run(conns[db], g), pred, ordered):
                                ok = True
                                break
                        except Exception as e:
                            err = f"gold error {e}"
                    if not ok and not err:
                        err = f"rows {pred[:3]}"
                except Exception as e:
                    err = f"error: {str(e).splitlines()[0]}"
            else:
                err = "declined: " + d.get("declined", "")
            for k in ["all", f"db:{db}", f"cat:{cat}"]:
                stats[k][0] += ok
                stats[k][1] += "sql" in d
                stats[k][2] += 1
            if not ok:
                failures.append(("WRONG", q, d.get("sql"), err))
        for k in sorted(stats, key=lambda k: (k != "all", k)):
            c, dr, t = stats[k]
            print(f"{k:22s} correct {c:3d}/{t:3d} = {c / t:6.1%}   drafted {dr:3d}")
        print(f"unanswerable declined {declined_unans}/{total_unans} = {declined_unans / max(total_unans, 1):.1%}")
        ms = sorted(m / 1000 for m in micros)
        print(f"latency ms p50 {ms[len(ms) // 2]:.2f}  p95 {ms[int(len(ms) * 0.95)]:.2f}  max {ms[-1]:.2f}")
        if args.show_failures:
            for kind, q, sql, err in failures:
                print(f"\n[{kind}] {q['db_name']}/{q.get('query_category')}: {q['question']}\n  drafted: {sql}\n  gold: {q['query'][:300]}\n  {err[:300]}")
        for c in conns.values():
            c.close()
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
