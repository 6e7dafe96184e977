#!/usr/bin/env python3
"""Static checks of the Helm chart deploy/helm/lalo.

No cluster runs where the tests run. The chart is rendered and linted by Helm itself: the Helm
v4 Go SDK that the PyPI package helm-python-sdk (module helm_python) bundles as a shared library,
as Debian bookworm has no helm package and PyPI's helm-package has binaries for macOS and
Windows only. Every rendered manifest is validated offline against the Kubernetes JSON schemas
that the PyPI package kubernetes-validate bundles, in strict mode (an unknown field is an error,
as kubectl's default field validation makes it), for the oldest Kubernetes the chart supports
and the newest bundled.
ServiceMonitor, a prometheus-operator CRD outside those schemas, is validated against the subset
of monitoring.coreos.com/v1 the chart uses (below), with ObjectMeta and LabelSelector taken from
the Kubernetes schemas.

Then it checks what the chart promises: probes on /readyz and /healthz, the claim mounted at
/var/lib/lalo holding the audit log and retrieval index, terminationGracePeriodSeconds above
[server] shutdown_grace_ms, a ServiceMonitor only when enabled and selecting the right Service,
a lalo.toml and sources.toml that parse and use only keys lalo knows (src/config.rs,
src/engine/sources.rs), secrets only in the Secret, the default policies equal to policies/.
Broken in-memory manifests must be rejected, to prove the validation has teeth.

Usage: python3 tests/deploy/check_helm.py   (needs helm-python-sdk, kubernetes-validate, PyYAML)
Prints one `ok:` or `FAIL:` line per check and a final `N passed, N failed`; exits 1 on any failure.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import sys
import tomllib
from importlib.resources import files
from pathlib import Path

import helm_python as helm
import jsonschema
import kubernetes_validate
import yaml
from referencing import Registry, Resource

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy/helm/lalo"
NAMESPACE = "lalo"
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest with schemas here.
KUBE_VERSIONS = ("1.27", ".".join(kubernetes_validate.latest_version().split(".")[:2]))

from checklist import check, summary  # noqa: E402 - beside this file


# --- rendering ---------------------------------------------------------------------------

def render(values: dict, release: str = "lalo") -> list[dict]:
    """`helm template` of the chart: every manifest, NOTES.txt left out."""
    with helm.Chart.load(CHART) as chart:
        out = chart.render(values, name=release, namespace=NAMESPACE, is_install=True)
    docs = []
    for path, text in sorted(out.items()):
        if path.endswith(".yaml"):
            docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


def chart_defaults() -> dict:
    with helm.Chart.load(CHART) as chart:
        return copy.deepcopy(chart.values)


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict], kind: str) -> dict:
    found = by_kind(docs, kind)
    assert len(found) == 1, f"{len(found)} {kind}s"
    return found[0]


def container(docs: list[dict]) -> dict:
    return one(docs, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]


def config_toml(docs: list[dict], key: str = "lalo.toml") -> dict:
    return tomllib.loads(one(docs, "ConfigMap")["data"][key])


# --- schemas -----------------------------------------------------------------------------

_DURATION = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
_META = "https://kubernetes.io/api/_definitions.json#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1."
# The fields of monitoring.coreos.com/v1 ServiceMonitor that the chart may write, as the
# prometheus-operator API reference defines them; anything else is an error here.
SERVICE_MONITOR = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {"$ref": _META + "ObjectMeta"},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["selector", "endpoints"],
            "properties": {
                "selector": {"$ref": _META + "LabelSelector"},
                "namespaceSelector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"any": {"type": "boolean"},
                                   "matchNames": {"type": "array", "items": {"type": "string"}}},
                },
                "jobLabel": {"type": "string"},
                "targetLabels": {"type": "array", "items": {"type": "string"}},
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "targetPort": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
                            "path": {"type": "string"},
                            "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]},
                            "interval": {"type": "string", "pattern": _DURATION},
                            "scrapeTimeout": {"type": "string", "pattern": _DURATION},
                            "honorLabels": {"type": "boolean"},
                        },
                    },
                },
            },
        },
    },
}


def _definitions(version: str) -> Resource:
    path = files("kubernetes_validate") / "kubernetes-json-schema" / f"v{version}.0-local-strict" / "_definitions.json"
    return Resource.from_contents(json.loads(path.read_text()))


_registries: dict[str, Registry] = {}


def schema_errors(doc: dict, version: str) -> list[str]:
    """Why `doc` is not a valid object of Kubernetes `version` (empty when it is)."""
    if doc.get("apiVersion") == "monitoring.coreos.com/v1" and doc.get("kind") == "ServiceMonitor":
        if version not in _registries:
            _registries[version] = _definitions(version) @ Registry()
        v = jsonschema.Draft202012Validator(SERVICE_MONITOR, registry=_registries[version])
        return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in v.iter_errors(doc)]
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as e:
        return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"]
    except kubernetes_validate.SchemaNotFoundError as e:
        return [e.message]
    return []


# --- what lalo's config accepts (read from its sources) ------------------------------------

def rust_structs(*paths: str) -> dict[str, dict[str, str]]:
    """Fields (name -> type) of the serde structs in lalo's sources; fields serde skips are left out."""
    structs: dict[str, dict[str, str]] = {}
    for rel in paths:
        text = (ROOT / rel).read_text()
        for m in re.finditer(r"pub struct (\w+) \{\n(.*?)\n\}", text, re.S):
            fields, skip = {}, False
            for line in m.group(2).splitlines():
                line = line.strip()
                if line.startswith("#[") and re.search(r"\bskip\b", line):
                    skip = True
                elif fm := re.match(r"pub (\w+): (.+),$", line):
                    if not skip:
                        fields[fm.group(1)] = fm.group(2)
                    skip = False
            structs[m.group(1)] = fields
    return structs


def unknown_keys(table: dict, struct: str, structs: dict, where: str = "") -> list[str]:
    """Keys of a TOML table that the struct (serde deny_unknown_fields) would refuse."""
    bad = []
    for key, value in table.items():
        ty = structs[struct].get(key)
        if ty is None:
            bad.append(f"{where}{key}")
            continue
        inner = re.sub(r"^(Vec|Option)<(.+)>$", r"\2", ty)
        if inner in structs:
            for item in value if isinstance(value, list) else [value]:
                bad += unknown_keys(item, inner, structs, f"{where}{key}.")
    return bad


def main() -> int:
    defaults = chart_defaults()
    test_values = yaml.safe_load((CHART / "ci/test-values.yaml").read_text())
    with_passwords = {"users": [dict(u, password=f"{u['name']}-pw") for u in defaults["users"]]}
    existing = {"secret": {"existingSecret": "lalo-secrets"}}
    scenarios = {
        "defaults with passwords": with_passwords,
        "defaults with an existing Secret": existing,
        "ci/test-values.yaml": test_values,
    }
    rendered: dict[str, list[dict]] = {}
    structs = rust_structs("src/config.rs", "src/engine/sources.rs")

    # -- Helm -------------------------------------------------------------------------------
    def chart_metadata():
        meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
        assert meta["apiVersion"] == "v2" and meta["type"] == "application", meta
        assert meta["kubeVersion"].startswith(f">={KUBE_VERSIONS[0]}"), meta["kubeVersion"]
        for f in ("values.yaml", "templates/_helpers.tpl", "templates/NOTES.txt"):
            assert (CHART / f).is_file(), f"{f} missing"
        return f"{meta['name']} {meta['version']}, appVersion {meta['appVersion']}, Helm SDK {helm.helm_sdk_version()}"

    def lint(values: dict):
        def run():
            report = helm.lint(CHART, values, strict=True, kube_version=f"v{KUBE_VERSIONS[-1]}.0")
            problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
            assert not problems, problems
            return f"{len(report['messages'])} info messages" if report["messages"] else None
        return run

    check("Chart.yaml: apiVersion v2 application chart with values, helpers and NOTES", chart_metadata)
    check("helm lint --strict passes with the default values (passwords set)", lint(with_passwords))
    check("helm lint --strict passes with ci/test-values.yaml", lint(test_values))

    def renders(values: dict, name: str):
        def run():
            rendered[name] = render(values)
            return ", ".join(f"{d['kind']}/{d['metadata']['name']}" for d in rendered[name])
        return run

    for name, values in scenarios.items():
        check(f"helm template renders ({name})", renders(values, name))

    def refuses_missing_passwords():
        try:
            render({})
        except helm.HelmRenderError as e:
            assert "needs a password" in str(e) and "existingSecret" in str(e), e
            return str(e).split(": ", 1)[-1]
        raise AssertionError("rendered without any password or existing Secret")

    check("helm template refuses to render without passwords or an existing Secret", refuses_missing_passwords)
    if len(rendered) < len(scenarios):
        return summary(extra_failures=1)
    test = rendered["ci/test-values.yaml"]
    plain = rendered["defaults with passwords"]

    # -- schemas ----------------------------------------------------------------------------
    def valid(docs: list[dict]):
        def run():
            for version in KUBE_VERSIONS:
                for d in docs:
                    errs = schema_errors(d, version)
                    assert not errs, f"{d['kind']}/{d['metadata']['name']} on Kubernetes {version}: {errs}"
            return f"{len(docs)} manifests on Kubernetes {' and '.join(KUBE_VERSIONS)}"
        return run

    for name in scenarios:
        check(f"every manifest validates against the Kubernetes schemas, strict ({name})", valid(rendered[name]))

    # -- what the chart promises ------------------------------------------------------------
    def kinds():
        want = {"ConfigMap": 1, "Secret": 1, "Service": 2, "StatefulSet": 1}
        for name, docs in rendered.items():
            got = {k: len(by_kind(docs, k)) for k in {d["kind"] for d in docs}}
            exp = dict(want, **({"ServiceMonitor": 1} if name == "ci/test-values.yaml" else {}))
            if name == "defaults with an existing Secret":
                exp.pop("Secret")
            assert got == exp, f"{name}: {got}"
        assert one(plain, "StatefulSet")["spec"]["replicas"] == 1
        return "ServiceMonitor only with serviceMonitor.enabled, no Secret with existingSecret"

    def command_and_config_mounts():
        c = container(test)
        assert c["command"] == ["lalo", "serve", "--config", "/etc/lalo/lalo.toml"], c["command"]
        cfg = config_toml(test)
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        want = {"/etc/lalo/lalo.toml": "lalo.toml",
                cfg["catalog"]["dir"] + "/sources.toml": "sources.toml"}
        vols = {v["name"]: v for v in one(test, "StatefulSet")["spec"]["template"]["spec"]["volumes"]}
        cm = one(test, "ConfigMap")
        for path, key in want.items():
            m = mounts[path]
            assert m.get("subPath") == key and m.get("readOnly"), m
            src = vols[m["name"]]["configMap"]
            assert src["name"] == cm["metadata"]["name"] and {"key": key, "path": key} in src["items"], src
        pol = mounts[cfg["governance"]["policies"]]
        assert "subPath" not in pol, "policies mounted by subPath would never reload"
        items = vols[pol["name"]]["configMap"]["items"]
        assert {i["key"] for i in items} == set(defaults["policies"]) and all(i["key"] in cm["data"] for i in items)
        return ", ".join(sorted(mounts))

    def data_volume():
        sts = one(test, "StatefulSet")
        claims = {t["metadata"]["name"]: t for t in sts["spec"]["volumeClaimTemplates"]}
        mount = next(m for m in container(test)["volumeMounts"] if m["mountPath"] == "/var/lib/lalo")
        assert mount["name"] in claims and not mount.get("readOnly"), mount
        claim = claims[mount["name"]]["spec"]
        assert claim["accessModes"] == ["ReadWriteOnce"] and claim["resources"]["requests"]["storage"], claim
        cfg = config_toml(test)
        assert cfg["catalog"]["data_dir"] == "/var/lib/lalo", cfg["catalog"]
        assert cfg["governance"]["audit_log"] == "/var/lib/lalo/audit.log", cfg["governance"]
        retrieval = cfg.get("planner", {}).get("retrieval_dir", cfg["catalog"]["data_dir"] + "/retrieval")
        assert retrieval.startswith("/var/lib/lalo/"), retrieval
        return f"claim {mount['name']!r} ({claim['resources']['requests']['storage']}) at /var/lib/lalo"

    def probes():
        c = container(test)
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        http_port = int(config_toml(test)["server"]["http_listen"].rsplit(":", 1)[1])
        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz"), ("startupProbe", "/healthz")):
            get = c[probe]["httpGet"]
            assert get["path"] == path, f"{probe}: {get}"
            assert ports.get(get["port"], get["port"]) == http_port, f"{probe} port {get['port']}"
        return f"/readyz and /healthz on {http_port}"

    def termination_grace(docs: list[dict]):
        def run():
            grace = one(docs, "StatefulSet")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
            ms = config_toml(docs)["server"]["shutdown_grace_ms"]
            assert grace > ms / 1000, f"terminationGracePeriodSeconds {grace} <= shutdown_grace_ms {ms}"
            assert not any(e["name"] == "LALO_SERVER_SHUTDOWN_GRACE_MS" for e in container(docs).get("env", []))
            return f"{grace} s > {ms} ms"
        return run

    def lalo_toml(docs: list[dict]):
        def run():
            cfg = config_toml(docs)
            assert cfg["server"]["listen"] == "0.0.0.0:6432", cfg["server"]
            assert cfg["server"]["http_listen"] == "0.0.0.0:6480", cfg["server"]
            bad = unknown_keys(cfg, "Config", structs)
            assert not bad, f"keys lalo does not know: {bad}"
            sources = config_toml(docs, "sources.toml")
            bad = [f"upstream.{k}" for u in sources.get("upstream", []) for k in u if k not in structs["UpstreamSource"]]
            assert not bad, f"sources.toml keys lalo does not know: {bad}"
            return f"sections {', '.join(k for k, v in cfg.items() if isinstance(v, dict))}; {len(sources.get('upstream', []))} upstreams"
        return run

    def env_overrides():
        known = set(re.findall(r'\("(\w+)", "(\w+)"\)', (ROOT / "src/config.rs").read_text()))
        known = {f"LALO_{s.upper()}_{k.upper()}" for s, k in known} | {"LALO_LOG", "LALO_LOG_FORMAT"}
        env = {e["name"] for e in container(test)["env"]}
        assert not {n for n in env if n.startswith("LALO_")} - known, env - known
        assert "OTEL_EXPORTER_OTLP_ENDPOINT" in env, "otel.endpoint set but not passed"
        assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in {e["name"] for e in container(plain)["env"]}
        return ", ".join(sorted(env))

    def secrets_stay_in_the_secret():
        secret = one(test, "Secret")
        values = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
        cfg, sources = config_toml(test), config_toml(test, "sources.toml")
        wanted = [u["password_env"] for u in cfg["users"]] + [u["url_env"] for u in sources["upstream"]]
        wanted += [t["token_env"] for t in cfg["mcp"]["tokens"]] + [cfg["governance"]["audit_key_env"]]
        assert set(wanted) <= set(values), f"not in the Secret: {set(wanted) - set(values)}"
        assert all("password" not in u for u in cfg["users"]), "a password in lalo.toml"
        assert all("url" not in u for u in sources["upstream"]), "an upstream URL in sources.toml"
        exposed = yaml.safe_dump([d for d in test if d["kind"] != "Secret"])
        leaked = [k for k, v in values.items() if v in exposed]
        assert not leaked, f"secret values outside the Secret: {leaked}"
        ref = container(test)["envFrom"][0]["secretRef"]["name"]
        assert ref == secret["metadata"]["name"], ref
        ref = container(rendered["defaults with an existing Secret"])["envFrom"][0]["secretRef"]["name"]
        assert ref == "lalo-secrets", ref
        return f"{len(values)} variables from Secret/{secret['metadata']['name']}"

    def services_and_monitor():
        svcs = by_kind(test, "Service")
        main_svc = next(s for s in svcs if s["metadata"]["name"] == "lalo")
        assert {p["name"]: p["port"] for p in main_svc["spec"]["ports"]} == {"pg": 6432, "http": 6480}
        assert one(test, "StatefulSet")["spec"]["serviceName"] in {s["metadata"]["name"] for s in svcs}
        sm = one(test, "ServiceMonitor")["spec"]
        want = sm["selector"]["matchLabels"]
        selected = [s for s in svcs if want.items() <= s["metadata"]["labels"].items()]
        assert selected == [main_svc], f"the ServiceMonitor selects {[s['metadata']['name'] for s in selected]}"
        ep = sm["endpoints"][0]
        port = next(p for p in main_svc["spec"]["ports"] if p["name"] == ep["port"])
        ports = {p["name"]: p["containerPort"] for p in container(test)["ports"]}
        assert ports[port["targetPort"]] == 6480 and ep["path"] == "/metrics", (port, ep)
        assert sm["namespaceSelector"]["matchNames"] == [NAMESPACE]
        return f"Service/{main_svc['metadata']['name']} port {ep['port']} {ep['path']} every {ep['interval']}"

    def security_and_resources():
        pod = one(test, "StatefulSet")["spec"]["template"]["spec"]
        c = container(test)
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"], c["resources"]
        return f"uid {pod['securityContext']['runAsUser']}, requests {c['resources']['requests']}"

    def default_policies():
        data = one(plain, "ConfigMap")["data"]
        for f in sorted((ROOT / "policies").iterdir()):
            assert data.get(f.name) == f.read_text(), f"values.yaml policies.{f.name} differs from policies/{f.name}"
        return ", ".join(sorted(defaults["policies"]))

    def config_change_rolls_pods():
        def checksum(values):
            return one(render(values), "StatefulSet")["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        changed = dict(with_passwords, config={"server": {"max_connections": 64}})
        assert checksum(with_passwords) != checksum(changed)

    def numbers_keep_their_digits():
        docs = render(dict(with_passwords, env={"LALO_GOVERNANCE_MAX_ROWS": 1000000},
                           secret={"extraEnv": {"LALO_AUDIT_KEY": 12345678}},
                           config={"server": {"shutdown_grace_ms": 1000000}}))
        env = {e["name"]: e["value"] for e in container(docs)["env"]}
        assert env["LALO_GOVERNANCE_MAX_ROWS"] == "1000000", env
        key = base64.b64decode(one(docs, "Secret")["data"]["LALO_AUDIT_KEY"]).decode()
        assert key == "12345678", key
        assert config_toml(docs)["server"]["shutdown_grace_ms"] == 1000000
        return "1000000 stays 1000000, not 1e+06"

    check("the expected objects, and a single replica by default", kinds)
    check("lalo serve --config /etc/lalo/lalo.toml; lalo.toml, sources.toml and policies from the ConfigMap", command_and_config_mounts)
    check("the persistent claim at /var/lib/lalo holds the audit log and the retrieval index", data_volume)
    check("readiness probe on /readyz, liveness on /healthz, on lalo's HTTP port", probes)
    check("terminationGracePeriodSeconds exceeds shutdown_grace_ms (defaults)", termination_grace(plain))
    check("terminationGracePeriodSeconds exceeds shutdown_grace_ms (45500 ms)", termination_grace(test))
    check("lalo.toml parses, listens on 0.0.0.0:6432 and :6480, and uses only keys lalo knows (defaults)", lalo_toml(plain))
    check("lalo.toml parses, listens on 0.0.0.0:6432 and :6480, and uses only keys lalo knows (ci values)", lalo_toml(test))
    check("environment: LALO_* names lalo reads, OTEL_EXPORTER_OTLP_ENDPOINT from otel.endpoint", env_overrides)
    check("passwords, upstream URLs and tokens only in the Secret, read through envFrom", secrets_stay_in_the_secret)
    check("Service ports pg 6432 and http 6480; the ServiceMonitor scrapes /metrics of that Service only", services_and_monitor)
    check("non-root, no privilege escalation, read-only root filesystem, resource requests", security_and_resources)
    check("the default policies are the repository's policies/", default_policies)
    check("a change to lalo.toml changes the pod template (pods roll)", config_change_rolls_pods)
    check("numbers in values are written with their digits", numbers_keep_their_digits)

    # -- negative checks: validation must reject broken manifests ---------------------------
    def rejected(kind: str, mutate, expect: str):
        def run():
            broken = copy.deepcopy(by_kind(test, kind)[0])
            mutate(broken)
            errs = schema_errors(broken, KUBE_VERSIONS[-1])
            assert errs, "the broken manifest validated"
            assert any(expect in e for e in errs), f"rejected for another reason: {errs}"
            return errs[0][:100]
        return run

    def pod(d):
        return d["spec"]["template"]["spec"]

    def port_as_string(d):
        pod(d)["containers"][0]["ports"][0]["containerPort"] = "6432"

    def misspelt_probe(d):
        c = pod(d)["containers"][0]
        c["readinesProbe"] = c.pop("readinessProbe")

    def no_selector(d):
        del d["spec"]["selector"]

    def grace_as_string(d):
        pod(d)["terminationGracePeriodSeconds"] = "45s"

    def service_port_missing(d):
        del d["spec"]["ports"][0]["port"]

    def configmap_number(d):
        d["data"]["lalo.toml"] = 1

    def monitor_interval(d):
        d["spec"]["endpoints"][0]["interval"] = "30 seconds"

    def monitor_misspelt(d):
        d["spec"]["endpoint"] = d["spec"].pop("endpoints")

    check("rejected: containerPort as a string", rejected("StatefulSet", port_as_string, "containerPort"))
    check("rejected: misspelt 'readinesProbe' (strict)", rejected("StatefulSet", misspelt_probe, "readinesProbe"))
    check("rejected: StatefulSet without a selector", rejected("StatefulSet", no_selector, "selector"))
    check("rejected: terminationGracePeriodSeconds as a string", rejected("StatefulSet", grace_as_string, "terminationGracePeriodSeconds"))
    check("rejected: Service port without its number", rejected("Service", service_port_missing, "port"))
    check("rejected: ConfigMap data that is not a string", rejected("ConfigMap", configmap_number, "data/lalo.toml"))
    check("rejected: ServiceMonitor interval '30 seconds'", rejected("ServiceMonitor", monitor_interval, "interval"))
    check("rejected: ServiceMonitor 'endpoint' instead of 'endpoints'", rejected("ServiceMonitor", monitor_misspelt, "endpoint"))

    # -- negative checks: the promise checks must catch broken charts -----------------------
    def caught(fn, mutate, expect: str):
        def run():
            docs = copy.deepcopy(test)
            mutate(docs)
            try:
                fn(docs)()
            except AssertionError as e:
                assert expect in str(e), f"caught for another reason: {e}"
                return str(e)[:100]
            raise AssertionError("the broken chart passed")
        return run

    def short_grace(docs):
        pod(one(docs, "StatefulSet"))["terminationGracePeriodSeconds"] = 30

    def unknown_key(docs):
        one(docs, "ConfigMap")["data"]["lalo.toml"] += "\n[audit]\nlog = 'x'\n"

    def loopback_listener(docs):
        cm = one(docs, "ConfigMap")["data"]
        cm["lalo.toml"] = cm["lalo.toml"].replace('"0.0.0.0:6480"', '"127.0.0.1:6480"')

    check("caught: terminationGracePeriodSeconds below shutdown_grace_ms", caught(termination_grace, short_grace, "<="))
    check("caught: a lalo.toml section lalo does not know", caught(lalo_toml, unknown_key, "audit"))
    check("caught: an HTTP listener on loopback only", caught(lalo_toml, loopback_listener, "http_listen"))

    return summary()


if __name__ == "__main__":
    sys.exit(main())
