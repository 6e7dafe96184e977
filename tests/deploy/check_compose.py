#!/usr/bin/env python3
"""Static checks of docker-compose.yml, the Dockerfile and the files they mount.

No Docker engine runs where the tests run, so this validates docker-compose.yml against the
Compose Specification JSON schema (tests/deploy/compose-spec.json, vendored from
compose-spec/compose-spec) both as written and after Compose-style variable interpolation, then
checks what the deployment promises: lalo built from the repository's Dockerfile, a seeded
PostgreSQL 15 upstream, health checks on both services, lalo starting only once PostgreSQL is
healthy, lalo.toml, policies/ and catalog/ mounted, settings and secrets from the environment,
and the upstream URL in the variable that catalog/sources.toml names. The `monitoring` profile
(Prometheus and Grafana) must mount files that exist, scrape lalo's HTTP listener, provision the
dashboard, and the dashboard must chart lalo's metric series and only those. It also proves the
schema check has teeth: broken copies of the file must be rejected.

Usage: python3 tests/deploy/check_compose.py [COMPOSE_FILE]     (needs PyYAML and jsonschema)
Prints one `ok:` or `FAIL:` line per check and a final `N passed, N failed`; exits 1 on any failure.
"""

from __future__ import annotations

import copy
import json
import re
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
# The file to check: docker-compose.yml at the repository root, or the path given as argument
# (relative mount sources still resolve against the repository root).
COMPOSE = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else ROOT / "docker-compose.yml"
SCHEMA = Path(__file__).resolve().parent / "compose-spec.json"

from checklist import check, summary  # noqa: E402 - beside this file


# --- Compose-style interpolation ----------------------------------------------------------

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def interpolate_str(s: str, env: dict[str, str], missing: list[str]) -> str:
    """Compose's rules: $$ is a literal $, ${VAR:-default} (unset or empty), ${VAR-default}
    (unset), ${VAR:?err} / ${VAR?err} (required), ${VAR:+alt} / ${VAR+alt}, ${VAR} and $VAR;
    defaults may nest."""
    out, i = [], 0
    while i < len(s):
        if s[i] != "$":
            out.append(s[i])
            i += 1
            continue
        if s.startswith("$$", i):
            out.append("$")
            i += 2
            continue
        if s.startswith("${", i):
            depth, j = 1, i + 2
            while j < len(s) and depth:
                if s[j] == "}":
                    depth -= 1
                elif s[j] == "{" and s[j - 1] == "$":
                    depth += 1
                j += 1
            if depth:
                raise ValueError(f"unterminated ${{ in {s!r}")
            out.append(_expand(s[i + 2 : j - 1], env, missing))
            i = j
            continue
        m = _NAME.match(s, i + 1)
        if not m:
            raise ValueError(f"bad interpolation in {s!r}")
        out.append(_expand(m.group(0), env, missing))
        i = m.end()
    return "".join(out)


def _expand(expr: str, env: dict[str, str], missing: list[str]) -> str:
    mm = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])(.*))?", expr, re.S)
    if not mm:
        raise ValueError(f"bad interpolation ${{{expr}}}")
    var, op, arg = mm.group(1), mm.group(2), mm.group(3)
    val = env.get(var)
    if op == ":-":
        return val if val else interpolate_str(arg, env, missing)
    if op == "-":
        return val if val is not None else interpolate_str(arg, env, missing)
    if op in (":?", "?"):
        if val is None or (op == ":?" and not val):
            missing.append(var)
            return ""
        return val
    if op in (":+", "+"):
        present = bool(val) if op == ":+" else val is not None
        return interpolate_str(arg, env, missing) if present else ""
    if val is None:
        missing.append(var)
        return ""
    return val


def interpolate(node, env: dict[str, str], missing: list[str]):
    if isinstance(node, str):
        return interpolate_str(node, env, missing)
    if isinstance(node, list):
        return [interpolate(v, env, missing) for v in node]
    if isinstance(node, dict):
        return {k: interpolate(v, env, missing) for k, v in node.items()}
    return node


def env_dict(service: dict) -> dict[str, str]:
    """A service's `environment`, in map or KEY=VALUE list form, as a dict of strings."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def volume_mounts(service: dict) -> list[tuple[str, str, bool]]:
    """(source, target, read_only) for each short- or long-syntax volume of a service."""
    out = []
    for v in service.get("volumes") or []:
        if isinstance(v, str):
            parts = v.split(":")
            source, target = parts[0], parts[1]
            ro = len(parts) > 2 and "ro" in parts[2].split(",")
        else:
            source, target, ro = v.get("source", ""), v["target"], bool(v.get("read_only"))
        out.append((source, target, ro))
    return out


def errors_of(validator: jsonschema.Draft7Validator, doc) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    ]


# The series lalo exports at /metrics and their labels; histograms add _bucket (le), _sum, _count.
METRICS = {
    "lalo_statements_total": {"entry", "lane", "outcome"},
    "lalo_statement_duration_seconds": {"entry", "lane"},
    "lalo_stage_duration_seconds": {"stage"},
    "lalo_denials_total": {"reason"},
    "lalo_plan_cache_total": {"result"},
    "lalo_connections": {"entry"},
    "lalo_connections_total": {"entry"},
    "lalo_sessions": set(),
    "lalo_upstream_connections": {"upstream", "state"},
    "lalo_upstream_errors_total": {"upstream"},
    "lalo_upstream_breaker_open": {"upstream"},
    "lalo_upstream_duration_seconds": {"upstream"},
    "lalo_llm_calls_total": {"outcome"},
    "lalo_llm_tokens_total": {"kind"},
    "lalo_llm_duration_seconds": set(),
    "lalo_retrieval_index_documents": set(),
    "lalo_retrieval_index_lag_seconds": set(),
    "lalo_audit_writes_total": set(),
    "lalo_audit_sync_duration_seconds": set(),
    "lalo_audit_failures_total": set(),
}
HISTOGRAMS = {m for m in METRICS if m.endswith("_seconds") and "lag" not in m}
TARGET_LABELS = {"instance", "job"}  # added by Prometheus to every scraped series


DASHBOARD = ROOT / "deploy/grafana/lalo.json"


def dashboard_checks(dash: dict) -> str:
    """The dashboard parses, takes its Prometheus data source from ${datasource}, lays its panels
    out without overlap, and every query uses only lalo's series (histograms through
    histogram_quantile over _bucket) and their labels; every series is charted."""
    assert 36 <= dash["schemaVersion"] <= 41, dash["schemaVersion"]
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    used, cells, queries = set(), set(), 0
    for p in dash["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, f"{p['title']} is wider than the grid"
        for cell in ((x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])):
            assert cell not in cells, f"{p['title']} overlaps another panel"
            cells.add(cell)
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == "${datasource}", f"{p['title']}: {p['datasource']}"
        for t in p["targets"]:
            queries += 1
            assert t["datasource"]["uid"] == "${datasource}", f"{p['title']}: {t['datasource']}"
            expr = t["expr"]
            assert expr.count("(") == expr.count(")"), f"{p['title']}: unbalanced {expr}"
            names = re.findall(r"\b(lalo_[a-z_]+)\b", expr)
            assert names, f"{p['title']}: no lalo series in {expr}"
            labels = set(TARGET_LABELS)
            for n in names:
                base = re.sub(r"_(bucket|sum|count)$", "", n) if n not in METRICS else n
                assert base in METRICS, f"{p['title']}: unknown series {n}"
                if base in HISTOGRAMS:
                    assert n == base + "_bucket" and "histogram_quantile(" in expr, \
                        f"{p['title']}: histogram {base} used without histogram_quantile over _bucket"
                    labels.add("le")
                used.add(base)
                labels |= METRICS[base]
            for group in re.findall(r"\bby \(([^)]*)\)", expr):
                extra = {l.strip() for l in group.split(",")} - labels
                assert not extra, f"{p['title']}: {names} have no label {extra}"
            for label in re.findall(r"[{,]\s*([a-z_]+)\s*[=!]~?", expr):
                assert label in labels, f"{p['title']}: {names} have no label {label}"
    missing = set(METRICS) - used
    assert not missing, f"series not charted: {sorted(missing)}"
    panels = sum(p["type"] != "row" for p in dash["panels"])
    return f"{panels} panels, {queries} queries over {len(used)} series"


def main() -> int:
    raw = yaml.safe_load(COMPOSE.read_text())
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema)
    missing: list[str] = []
    doc = interpolate(raw, {}, missing)  # what `docker compose config` sees with no .env
    services = doc.get("services", {})
    lalo = services.get("lalo", {})
    pg = services.get("postgres", {})
    lalo_env = env_dict(lalo)
    pg_env = env_dict(pg)

    # -- the schema ------------------------------------------------------------------------
    def schema_is_compose_spec():
        jsonschema.Draft7Validator.check_schema(schema)
        assert schema.get("title") == "Compose Specification", schema.get("title")
        return f"{SCHEMA.relative_to(ROOT)}, {len(schema['definitions'])} definitions"

    def valid_as_written():
        errs = errors_of(validator, raw)
        assert not errs, "; ".join(errs)
        return f"services: {', '.join(raw['services'])}"

    def valid_interpolated():
        errs = errors_of(validator, doc)
        assert not errs, "; ".join(errs)

    def every_variable_has_default():
        assert not missing, f"variables without a default: {sorted(set(missing))}"
        names = sorted(set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", COMPOSE.read_text())))
        return f"{len(names)} variables, all defaulted"

    check("compose-spec.json is a valid draft-07 schema", schema_is_compose_spec)
    check(f"{COMPOSE.name} validates against the Compose Specification", valid_as_written)
    check(f"{COMPOSE.name} validates after interpolation with an empty environment", valid_interpolated)
    check("every ${VAR} has a default, so `docker compose up` needs no .env", every_variable_has_default)

    # -- the lalo service ------------------------------------------------------------------
    def lalo_built_from_dockerfile():
        build = lalo.get("build")
        assert build, "services.lalo has no build"
        ctx = build if isinstance(build, str) else build.get("context", ".")
        dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        path = (ROOT / ctx / dockerfile).resolve()
        assert path.is_file(), f"{path} does not exist"
        assert (ROOT / ctx / ".dockerignore").is_file(), ".dockerignore missing from the build context"
        return f"context {ctx!r}, {dockerfile}"

    def dockerfile_shape():
        text = (ROOT / "Dockerfile").read_text()
        froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
        assert len(froms) >= 2, f"expected a multi-stage build, got FROM {froms}"
        assert froms[0].startswith("rust:"), froms[0]
        assert re.search(r"^ARG RUST_VERSION=1\.(89|9\d)", text, re.M), "builder is not Rust 1.89+"
        assert "protobuf-compiler" in text, "builder lacks protobuf-compiler"
        assert "cargo build --release --locked" in text
        assert froms[-1].startswith("debian:") and "slim" in froms[-1], froms[-1]
        assert re.search(r"^ARG DEBIAN_RELEASE=bookworm", text, re.M)
        assert "ca-certificates" in text
        user = re.findall(r"^USER\s+(\S+)", text, re.M)
        assert user and not user[-1].startswith(("root", "0")), f"runtime user {user}"
        assert re.search(r"^HEALTHCHECK\b", text, re.M), "no HEALTHCHECK"
        for src in ("deploy/lalo.toml", "policies/", "catalog/"):
            assert re.search(rf"^COPY\s+{re.escape(src)}\s+/etc/lalo/", text, re.M), f"image lacks {src}"
        return f"{froms[0]} -> {froms[-1]}, USER {user[-1]}"

    def dockerignore_keeps_state_out():
        lines = {l.strip() for l in (ROOT / ".dockerignore").read_text().splitlines()}
        for pat in ("target/", "data/", ".git"):
            assert pat in lines, f".dockerignore lacks {pat}"
        for needed in ("Cargo.toml", "Cargo.lock", "src", "lalo.toml", "policies", "catalog", "tests", "deploy"):
            assert needed not in lines and f"{needed}/" not in lines, f".dockerignore drops {needed}"

    def lalo_healthcheck():
        hc = lalo.get("healthcheck")
        assert hc and not hc.get("disable"), "services.lalo has no healthcheck"
        test = hc["test"] if isinstance(hc["test"], str) else " ".join(hc["test"])
        assert "/healthz" in test and ":6480" in test, test
        return test

    def lalo_waits_for_postgres():
        dep = lalo.get("depends_on")
        assert isinstance(dep, dict) and "postgres" in dep, f"depends_on: {dep!r}"
        assert dep["postgres"].get("condition") == "service_healthy", dep["postgres"]

    def lalo_mounts():
        mounts = volume_mounts(lalo)
        by_target = {t: (s, ro) for s, t, ro in mounts}
        cmd = lalo.get("command") or []
        cmd = cmd.split() if isinstance(cmd, str) else cmd
        config_target = cmd[cmd.index("--config") + 1] if "--config" in cmd else "/etc/lalo/lalo.toml"
        want = {
            config_target: "lalo.toml",
            lalo_env.get("LALO_GOVERNANCE_POLICIES", "/etc/lalo/policies"): "policies",
            lalo_env.get("LALO_CATALOG_DIR", "/etc/lalo/catalog"): "catalog",
        }
        for target, what in want.items():
            assert target in by_target, f"{what} is not mounted at {target}"
            source, ro = by_target[target]
            assert ro, f"{target} should be mounted read-only"
            host = (ROOT / source).resolve()
            assert host.exists(), f"mount source {source} does not exist"
            assert host.name == what or host.name.endswith(what), f"{target} mounts {source}"
        for s, t, _ in mounts:
            if s.startswith((".", "/")):
                assert (ROOT / s).exists(), f"bind source {s} (for {t}) does not exist"
        data = lalo_env.get("LALO_CATALOG_DATA_DIR")
        assert data and data in by_target and not by_target[data][1], "data dir is not a writable volume"
        return ", ".join(f"{s} -> {t}" for s, t, _ in mounts)

    def lalo_env_settings():
        need = {
            "LALO_SERVER_LISTEN": "0.0.0.0:6432",
            "LALO_SERVER_HTTP_LISTEN": "0.0.0.0:6480",
            "LALO_CATALOG_DIR": None,
            "LALO_CATALOG_DATA_DIR": None,
            "LALO_GOVERNANCE_POLICIES": None,
            "LALO_GOVERNANCE_AUDIT_LOG": None,
        }
        for k, v in need.items():
            assert k in lalo_env, f"{k} not set"
            if v is not None:
                assert lalo_env[k] == v, f"{k}={lalo_env[k]!r}, want {v!r}"
        return f"{sum(k.startswith('LALO_') for k in lalo_env)} LALO_* variables"

    def lalo_ports():
        published = {}
        for p in lalo.get("ports") or []:
            assert isinstance(p, str), f"port {p!r}"
            *host, container = p.split(":")
            published[int(container.split("/")[0])] = ":".join(host)
        assert set(published) >= {6432, 6480}, f"published: {published}"
        assert all(h.startswith("127.0.0.1:") for h in published.values()), \
            f"demo defaults must bind to loopback only: {published}"
        return ", ".join(f"{h} -> {c}" for c, h in sorted(published.items()))

    def passwords_from_env():
        cfg = tomllib.loads((ROOT / "deploy/lalo.toml").read_text())
        users = cfg.get("users", [])
        assert users, "deploy/lalo.toml has no users"
        for u in users:
            assert "password" not in u, f"user {u['name']} has a committed password"
            var = u.get("password_env")
            assert var, f"user {u['name']} has no password_env"
            assert var in lalo_env and lalo_env[var], f"{var} (user {u['name']}) not set for lalo"
        raw_env = raw["services"]["lalo"]["environment"]
        for u in users:
            assert "${" in str(raw_env[u["password_env"]]), f"{u['password_env']} is hard-coded"
        assert cfg["server"]["listen"].startswith("0.0.0.0:"), cfg["server"]["listen"]
        return ", ".join(u["password_env"] for u in users)

    check("lalo is built from the repository's Dockerfile", lalo_built_from_dockerfile)
    check("Dockerfile: Rust 1.89+ builder with protoc, slim Debian runtime, non-root user", dockerfile_shape)
    check(".dockerignore keeps build output and data out, the sources in", dockerignore_keeps_state_out)
    check("lalo has a healthcheck on /healthz", lalo_healthcheck)
    check("lalo depends on postgres with condition service_healthy", lalo_waits_for_postgres)
    check("lalo mounts lalo.toml, policies/ and catalog/ read-only, data on a volume", lalo_mounts)
    check("lalo's listeners and paths are configured through LALO_* environment variables", lalo_env_settings)
    check("lalo publishes pgwire and HTTP on loopback by default", lalo_ports)
    check("user passwords come from the environment (password_env)", passwords_from_env)

    # -- the upstream ----------------------------------------------------------------------
    def upstream_url_env():
        mounts = {t: s for s, t, _ in volume_mounts(lalo)}
        catalog_dir = lalo_env.get("LALO_CATALOG_DIR", "/etc/lalo/catalog")
        src = mounts.get(f"{catalog_dir}/sources.toml") or f"{mounts[catalog_dir]}/sources.toml"
        sources = tomllib.loads((ROOT / src).read_text())
        ups = [u for u in sources.get("upstream", []) if u.get("kind") == "postgres"]
        assert ups, f"{src} declares no postgres upstream"
        var = ups[0]["url_env"]
        assert var in lalo_env, f"{var} (url_env of upstream {ups[0]['name']}) not set for lalo"
        url = urlsplit(lalo_env[var])
        assert url.scheme in ("postgres", "postgresql"), url.scheme
        assert url.hostname == "postgres" and (url.port or 5432) == 5432, url.netloc
        assert url.path.lstrip("/") == pg_env.get("POSTGRES_DB"), (url.path, pg_env.get("POSTGRES_DB"))
        assert url.username == pg_env.get("LALO_READER_USER"), (url.username, pg_env.get("LALO_READER_USER"))
        assert url.password == pg_env.get("LALO_READER_PASSWORD"), "upstream password differs from postgres'"
        assert "${LALO_READER_PASSWORD" in raw["services"]["lalo"]["environment"][var], "password hard-coded"
        return f"{src}: upstream {ups[0]['name']!r}, url_env {var}"

    def postgres_service():
        assert pg.get("image", "").split(":")[0] == "postgres", pg.get("image")
        assert pg["image"].split(":")[1].split("-")[0].split(".")[0] == "15", pg["image"]
        for k in ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"):
            assert pg_env.get(k), f"{k} not set"
        assert "${" in str(raw["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"])
        return pg["image"]

    def postgres_healthcheck():
        hc = pg.get("healthcheck")
        assert hc and not hc.get("disable"), "services.postgres has no healthcheck"
        test = hc["test"] if isinstance(hc["test"], str) else " ".join(hc["test"])
        assert "pg_isready" in test, test
        return test

    def postgres_seed():
        seeds = [s for s, t, _ in volume_mounts(pg) if t.startswith("/docker-entrypoint-initdb.d")]
        assert seeds, "nothing mounted into /docker-entrypoint-initdb.d"
        seed = ROOT / seeds[0]
        files = sorted(p.name for p in seed.iterdir() if p.suffix in (".sql", ".sh"))
        assert any(f.endswith(".sql") for f in files), f"no .sql seed in {seeds[0]}"
        sql = "".join((seed / f).read_text() for f in files if f.endswith(".sql"))
        assert "CREATE TABLE" in sql and "INSERT INTO" in sql
        assert "Apache License" in sql and (seed / "LICENSE").is_file(), "seed lacks its licence notice"
        for f in files:
            if f.endswith(".sh"):
                assert (seed / f).stat().st_mode & 0o111, f"{f} is not executable"
        return f"{seeds[0]}: {', '.join(files)}"

    def secrets_follow_environment():
        env = {"LALO_READER_PASSWORD": "s3cret", "LALO_ADMIN_PASSWORD": "adm1n", "POSTGRES_PASSWORD": "pgpw"}
        m: list[str] = []
        d = interpolate(raw, env, m)
        le, pe = env_dict(d["services"]["lalo"]), env_dict(d["services"]["postgres"])
        assert pe["LALO_READER_PASSWORD"] == "s3cret" and pe["POSTGRES_PASSWORD"] == "pgpw", pe
        assert urlsplit(le["RESTAURANTS_URL"]).password == "s3cret", le["RESTAURANTS_URL"]
        assert le["LALO_ADMIN_PASSWORD"] == "adm1n" and le["LALO_ANALYST_PASSWORD"] == "analyst", le
        assert not m, m

    check("the upstream URL reaches the postgres service through url_env of catalog/sources.toml", upstream_url_env)
    check("secrets set in the environment replace the demo defaults in both services", secrets_follow_environment)
    check("postgres service runs postgres:15 with credentials from the environment", postgres_service)
    check("postgres has a pg_isready healthcheck", postgres_healthcheck)
    check("postgres is seeded from the sample in deploy/postgres-seed/", postgres_seed)

    # -- the monitoring profile: Prometheus and Grafana ------------------------------------
    prom = services.get("prometheus", {})
    graf = services.get("grafana", {})

    def mounted(service: dict, target: str) -> Path:
        """The host file a service mounts at `target` (or under a mounted directory)."""
        for s, t, _ in volume_mounts(service):
            if target == t or target.startswith(t.rstrip("/") + "/"):
                return (ROOT / s / target[len(t):].lstrip("/")).resolve()
        raise AssertionError(f"nothing mounted at {target}")

    def monitoring_profile():
        for name in ("prometheus", "grafana"):
            assert name in services, f"no service {name}"
            assert services[name].get("profiles") == ["monitoring"], f"{name}: {services[name].get('profiles')}"
        for name in ("lalo", "postgres"):
            assert not services[name].get("profiles"), f"{name} must start without a profile"
        assert prom["image"].split(":")[0] == "prom/prometheus", prom["image"]
        assert graf["image"].split(":")[0] == "grafana/grafana", graf["image"]
        for svc in (prom, graf):
            for s, t, ro in volume_mounts(svc):
                if s.startswith((".", "/")):
                    assert (ROOT / s).exists(), f"bind source {s} (for {t}) does not exist"
                    assert ro, f"{s} should be mounted read-only"
        return f"{prom['image']}, {graf['image']}"

    def prometheus_scrapes_lalo():
        cmd = prom.get("command") or []
        flag = next((c for c in cmd if c.startswith("--config.file=")), "--config.file=/etc/prometheus/prometheus.yml")
        cfg = yaml.safe_load(mounted(prom, flag.split("=", 1)[1]).read_text())
        http_port = lalo_env["LALO_SERVER_HTTP_LISTEN"].rsplit(":", 1)[1]
        want = f"lalo:{http_port}"
        jobs = [j for j in cfg["scrape_configs"]
                if any(want in sc.get("targets", []) for sc in j.get("static_configs", []))]
        assert jobs, f"no scrape job targets {want}"
        assert jobs[0].get("metrics_path", "/metrics") == "/metrics", jobs[0].get("metrics_path")
        assert jobs[0].get("scheme", "http") == "http"
        return f"job {jobs[0]['job_name']!r} scrapes {want}/metrics"

    def grafana_provisioning():
        prov = mounted(graf, "/etc/grafana/provisioning")
        ds = yaml.safe_load((prov / "datasources" / "prometheus.yml").read_text())["datasources"]
        prom_ds = [d for d in ds if d["type"] == "prometheus"]
        assert prom_ds and urlsplit(prom_ds[0]["url"]).hostname == "prometheus", ds
        assert urlsplit(prom_ds[0]["url"]).port == 9090, prom_ds[0]["url"]
        providers = yaml.safe_load((prov / "dashboards" / "lalo.yml").read_text())["providers"]
        path = providers[0]["options"]["path"]
        dash = mounted(graf, f"{path}/lalo.json")
        assert dash == (ROOT / "deploy/grafana/lalo.json").resolve(), dash
        home = env_dict(graf).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
        assert home is None or mounted(graf, home) == dash, home
        return f"data source {prom_ds[0]['url']}, dashboards from {path}"

    def grafana_port():
        ports = graf.get("ports") or []
        assert ports == ["127.0.0.1:3000:3000"], f"grafana publishes {ports}"
        assert "${" in raw["services"]["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
        return ports[0]

    # -- the distributed profile: a Ballista scheduler, two executors, lalo on them ----------
    def arg(cmd: list[str], flag: str) -> str:
        assert flag in cmd, f"{flag} missing from {cmd}"
        return cmd[cmd.index(flag) + 1]

    def distributed_profile():
        sched = services.get("ballista-scheduler", {})
        execs = {n: v for n, v in services.items() if n.startswith("ballista-executor")}
        front = services.get("lalo-distributed", {})
        for name, svc in [("ballista-scheduler", sched), ("lalo-distributed", front), *execs.items()]:
            assert svc.get("profiles") == ["distributed"], f"{name}: {svc.get('profiles')}"
            assert svc.get("image") == lalo.get("image"), f"{name} runs {svc.get('image')}, not lalo's image"
        assert len(execs) == 2, f"executors: {sorted(execs)}"
        assert sched["command"][:2] == ["ballista", "scheduler"], sched["command"]
        port = arg(sched["command"], "--bind").rsplit(":", 1)[1]
        data = [t for s, t, _ in volume_mounts(front) if not s.startswith((".", "/"))]
        assert data == [env_dict(front)["LALO_CATALOG_DATA_DIR"]], f"lalo-distributed's data volume: {data}"
        volume = next(s for s, t, _ in volume_mounts(front) if t == data[0])
        for name, svc in execs.items():
            cmd = svc["command"]
            assert cmd[:2] == ["ballista", "executor"], cmd
            assert arg(cmd, "--scheduler") == f"ballista-scheduler:{port}", cmd
            assert arg(cmd, "--external-host") == name, f"{name} registers as {arg(cmd, '--external-host')}"
            mounts = {t: (s, ro) for s, t, ro in volume_mounts(svc)}
            assert mounts.get(data[0]) == (volume, True), f"{name} must read lalo's files at {data[0]} read-only: {mounts}"
        url = env_dict(front).get("LALO_ENGINE_DISTRIBUTED")
        assert url == f"df://ballista-scheduler:{port}", url
        return f"scheduler :{port}, executors {', '.join(sorted(execs))}, lalo at {url}, files in volume {volume}"

    # -- the fleet profile: two replicas behind HAProxy ---------------------------------------
    def fleet_profile():
        reps = {n: v for n, v in services.items() if n.startswith("lalo-replica")}
        proxy = services.get("haproxy", {})
        assert len(reps) == 2 and proxy, f"replicas {sorted(reps)}, haproxy {bool(proxy)}"
        shared = {t: s for s, t, ro in volume_mounts(lalo) if s.startswith(".")}
        volumes = set()
        for name, svc in [*reps.items(), ("haproxy", proxy)]:
            assert svc.get("profiles") == ["fleet"], f"{name}: {svc.get('profiles')}"
        for name, svc in reps.items():
            mine = {t: (s, ro) for s, t, ro in volume_mounts(svc)}
            for t, s in shared.items():
                assert mine.get(t) == (s, True), f"{name} must share {s} at {t} read-only"
            own = [s for s, (src, _) in ((t, v) for t, v in mine.items()) if not src.startswith(".")]
            assert len(own) == 1, f"{name}: one data volume of its own, got {own}"
            volumes.add(mine[own[0]][0])
            assert env_dict(svc).get("LALO_GOVERNANCE_AUDIT_LOG", "").startswith(own[0]), f"{name}'s audit log is not on its own volume"
        assert len(volumes) == 2, f"the replicas share a data volume (one audit chain written by two): {volumes}"
        cfg = mounted(proxy, "/usr/local/etc/haproxy/haproxy.cfg").read_text()
        words = [l.split("#")[0].split() for l in cfg.splitlines()]
        assert ["mode", "tcp"] in words, "haproxy must run in TCP mode"
        assert ["balance", "source"] in words, "cancel requests need the client's replica: balance source"
        pg_port = lalo_env["LALO_SERVER_LISTEN"].rsplit(":", 1)[1]
        http_port = lalo_env["LALO_SERVER_HTTP_LISTEN"].rsplit(":", 1)[1]
        servers = [w[2] for w in words if w[:1] == ["server"]]
        assert sorted(servers) == sorted(f"{n}:{pg_port}" for n in reps), servers
        assert any(w[:3] == ["default-server", "check", "port"] and w[3] == http_port for w in words), "health check on lalo's HTTP port"
        ports = proxy.get("ports") or []
        assert ports and ports[0].startswith("127.0.0.1:") and ports[0].endswith(f":{pg_port}"), ports
        return f"{', '.join(sorted(reps))} behind haproxy ({ports[0]}), audit volumes {sorted(volumes)}"

    check("prometheus and grafana run only in the 'monitoring' profile, mounting files that exist", monitoring_profile)
    check("prometheus scrapes lalo's HTTP listener at /metrics", prometheus_scrapes_lalo)
    check("grafana is provisioned with the prometheus service and the dashboard", grafana_provisioning)
    check("grafana publishes on loopback port 3000 by default, its password from the environment", grafana_port)
    dashboard = json.loads(DASHBOARD.read_text())
    check("the 'distributed' profile: a scheduler and two executors from lalo's image, lalo pointed at them, files shared", distributed_profile)
    check("the 'fleet' profile: two replicas sharing config, policies and catalog, own audit volumes, HAProxy in TCP mode", fleet_profile)
    check("deploy/grafana/lalo.json charts lalo's metric series, and only those", lambda: dashboard_checks(dashboard))

    # -- negative checks: the schema must reject broken files ------------------------------
    def rejected(mutate, expect_path: str):
        def run():
            broken = copy.deepcopy(raw)
            mutate(broken)
            errs = errors_of(validator, broken)
            assert errs, "the broken copy validated"
            assert any(e.startswith(expect_path) for e in errs), f"errors elsewhere: {errs}"
            return errs[0][:100]
        return run

    def ports_number(d):
        d["services"]["lalo"]["ports"] = 6432

    def bad_condition(d):
        d["services"]["lalo"]["depends_on"]["postgres"]["condition"] = "service_ready"

    def interval_number(d):
        d["services"]["postgres"]["healthcheck"]["interval"] = 5

    def unknown_service_key(d):
        d["services"]["lalo"]["helthcheck"] = d["services"]["lalo"].pop("healthcheck")

    def unknown_top_level(d):
        d["service"] = d.pop("services")

    check("rejected: services.lalo.ports as a number", rejected(ports_number, "services/lalo"))
    check("rejected: depends_on condition 'service_ready'", rejected(bad_condition, "services/lalo"))
    check("rejected: healthcheck interval as a number", rejected(interval_number, "services/postgres"))
    check("rejected: misspelt service key 'helthcheck'", rejected(unknown_service_key, "services/lalo"))
    check("rejected: top-level 'service' instead of 'services'", rejected(unknown_top_level, "<root>"))

    def profiles_string(d):
        d["services"]["grafana"]["profiles"] = "monitoring"

    check("rejected: profiles as a string, not a list", rejected(profiles_string, "services/grafana"))

    # -- negative checks: the dashboard check must reject broken dashboards ----------------
    def dashboard_rejected(old: str, new: str, expect: str):
        def run():
            broken = copy.deepcopy(dashboard)
            hits = [t for p in broken["panels"] for t in p.get("targets", []) if old in t["expr"]]
            assert hits, f"no query contains {old!r}"
            hits[0]["expr"] = hits[0]["expr"].replace(old, new)
            try:
                dashboard_checks(broken)
            except AssertionError as e:
                assert expect in str(e), f"rejected for another reason: {e}"
                return str(e)[:100]
            raise AssertionError("the broken dashboard passed")
        return run

    check("rejected: a dashboard query of a series lalo does not export",
          dashboard_rejected("lalo_denials_total", "lalo_denial_total", "unknown series"))
    check("rejected: a histogram charted without histogram_quantile",
          dashboard_rejected("histogram_quantile(0.5, sum by (le) (rate(lalo_statement_duration_seconds_bucket",
                             "(sum by (le) (rate(lalo_statement_duration_seconds_bucket", "histogram_quantile"))
    check("rejected: grouping by a label the series does not have",
          dashboard_rejected("sum by (reason) (rate(lalo_denials_total", "sum by (upstream) (rate(lalo_denials_total",
                             "have no label"))

    def interpolation_understood():
        m: list[str] = []
        got = interpolate_str("${A:-x}|${B-y}|${C}|$$D|${E:-${F:-z}}", {"B": "", "C": "c"}, m)
        assert got == "x||c|$D|z" and not m, (got, m)
        interpolate_str("${NOPE}", {}, m)
        assert m == ["NOPE"], m

    check("the interpolation used above follows Compose's rules", interpolation_understood)

    return summary()


if __name__ == "__main__":
    sys.exit(main())
