"""Static checks of deploy/ (run by crates/cli/tests/deploy.rs).

Usage: check_deploy.py REPO OUT_JSON

Parses every YAML and JSON file under deploy/, renders deploy/kubernetes and each overlay
with `$KUBECTL kustomize`, validates the objects against the bundled OpenAPI schemas
(kubernetes-validate, strict: unknown fields are errors), checks the references between
them (ConfigMaps, PVCs, ServiceAccounts, ports, selectors, RBAC), Grafana provisioning and
dashboards, and alert rules.
Every PromQL expression is parsed (promql-parser). Writes OUT_JSON for the Rust side:
  configs: the configs in the rendered ConfigMaps (written beside OUT_JSON), with the
           binary that reads them and the environment the pod gives it
  metrics: every metric selector used, with the labels it matches or groups by
Exits 1 with every problem listed.
"""

import glob
import json
import os
import re
import subprocess
import sys

import kubernetes_validate
import promql_parser as pq
import yaml

K8S_VERSION = "1.30.0"  # oldest minor still commonly run; schemas are bundled, no network
errors = []


def err(where, msg):
    errors.append(f"{where}: {msg}")


def rel(path):
    return os.path.relpath(path, REPO)


def load_yaml_docs(path):
    try:
        with open(path) as f:
            return [d for d in yaml.safe_load_all(f) if d is not None]
    except yaml.YAMLError as e:
        err(rel(path), f"YAML: {e}")
        return []


# ---------------------------------------------------------------- kubernetes + kustomize


def kustomize(dirpath):
    """The objects `kubectl kustomize` renders (the kustomize built into kubectl)."""
    kubectl = os.environ.get("KUBECTL", "kubectl")
    r = subprocess.run([kubectl, "kustomize", dirpath], capture_output=True, text=True)
    if r.returncode != 0:
        err(rel(dirpath), f"kubectl kustomize: {r.stderr.strip()}")
        return []
    return [d for d in yaml.safe_load_all(r.stdout) if d is not None]


def pod_spec(obj):
    kind = obj.get("kind")
    if kind in ("Deployment", "StatefulSet", "DaemonSet"):
        return obj["spec"]["template"]
    return None


def check_objects(name, objects, out_dir):
    """Schema and cross-reference checks of one rendered variant. Returns its objects by
    (kind, name) and the configs in its ConfigMaps (written to out_dir) with the binary
    that reads each."""
    by_kind = {}
    src = name
    for o in objects:
        if not isinstance(o, dict) or "apiVersion" not in o or "kind" not in o:
            err(src, "not a Kubernetes object")
            continue
        try:
            kubernetes_validate.validate(o, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = "/".join(str(p) for p in e.path)
            err(src, f"{o['kind']}/{o['metadata'].get('name')}: {path}: {e.message}")
        key = (o["kind"], o["metadata"]["name"])
        if key in by_kind:
            err(src, f"{key} defined twice in {name}")
        by_kind[key] = o
    names = lambda kind: {n for k, n in by_kind if k == kind}
    cms = {n: o.get("data", {}) for (k, n), o in by_kind.items() if k == "ConfigMap"}
    sas, pvcs = names("ServiceAccount"), names("PersistentVolumeClaim")
    templates = []
    configs = []
    for (kind, oname), o in by_kind.items():
        if kind == "ClusterRoleBinding" or kind == "RoleBinding":
            for s in o.get("subjects", []):
                if s["kind"] == "ServiceAccount" and s["name"] not in sas:
                    err(name, f"{kind}/{oname}: ServiceAccount {s['name']} not defined")
            if o["roleRef"]["kind"] == "ClusterRole" and o["roleRef"]["name"] not in names("ClusterRole"):
                err(name, f"{kind}/{oname}: ClusterRole {o['roleRef']['name']} not defined")
        t = pod_spec(o)
        if t is None:
            continue
        where = f"{name}: {kind}/{oname}"
        sel = o["spec"]["selector"]["matchLabels"]
        labels = t["metadata"].get("labels", {})
        if any(labels.get(k) != v for k, v in sel.items()):
            err(where, "selector does not match the pod template labels")
        templates.append((labels, t["spec"]))
        spec = t["spec"]
        if spec.get("serviceAccountName") and spec["serviceAccountName"] not in sas:
            err(where, f"ServiceAccount {spec['serviceAccountName']} not defined")
        vols = {v["name"]: v for v in spec.get("volumes", [])}
        claims = {c["metadata"]["name"] for c in o["spec"].get("volumeClaimTemplates", [])}
        for v in vols.values():
            if "configMap" in v and v["configMap"]["name"] not in cms:
                err(where, f"ConfigMap {v['configMap']['name']} not defined")
            if "persistentVolumeClaim" in v and v["persistentVolumeClaim"]["claimName"] not in pvcs:
                err(where, f"PVC {v['persistentVolumeClaim']['claimName']} not defined")
        for c in spec["containers"]:
            sc = c.get("securityContext", {})
            if not sc.get("readOnlyRootFilesystem"):
                err(where, f"container {c['name']}: root filesystem not read-only")
            if sc.get("allowPrivilegeEscalation") is not False:
                err(where, f"container {c['name']}: allowPrivilegeEscalation not false")
            if "ALL" not in sc.get("capabilities", {}).get("drop", []):
                err(where, f"container {c['name']}: capabilities not dropped")
            if "memory" not in c.get("resources", {}).get("limits", {}):
                err(where, f"container {c['name']}: no memory limit")
            ports = {p["name"] for p in c.get("ports", [])}
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                port = c.get(probe, {}).get("httpGet", {}).get("port")
                if isinstance(port, str) and port not in ports:
                    err(where, f"{probe} port {port} not a container port")
            if "readinessProbe" not in c:
                err(where, f"container {c['name']}: no readinessProbe")
            binary = "agent" if "silt-agent" in " ".join(c.get("command", [])) else "server"
            args = c.get("args", [])
            cfg = args[args.index("--config") + 1] if "--config" in args else None
            if cfg is None:
                err(where, "container has no --config")
                continue
            # What the pod would see: fieldRefs get a sample value, optional Secret keys
            # are left unset (their ${VAR:-default} applies), required ones a placeholder.
            env = {}
            for e in c.get("env", []):
                ref = e.get("valueFrom", {})
                if "value" in e:
                    env[e["name"]] = e["value"]
                elif "fieldRef" in ref:
                    env[e["name"]] = "node-1"
                elif "secretKeyRef" in ref and not ref["secretKeyRef"].get("optional"):
                    env[e["name"]] = "test-" + ref["secretKeyRef"]["key"]
            found = False
            for m in c.get("volumeMounts", []):
                if m["name"] not in vols and m["name"] not in claims:
                    err(where, f"volumeMount {m['name']} has no volume")
                    continue
                v = vols.get(m["name"], {})
                if "configMap" in v and cfg.startswith(m["mountPath"].rstrip("/") + "/"):
                    key = cfg[len(m["mountPath"].rstrip("/")) + 1:]
                    cm = v["configMap"]["name"]
                    text = cms.get(cm, {}).get(key)
                    if text is None:
                        err(where, f"{cfg}: key {key} not in ConfigMap {cm}")
                    else:
                        found = True
                        f = os.path.join(out_dir, f"{name.replace('/', '_')}_{cm}_{key}")
                        with open(f, "w") as fh:
                            fh.write(text)
                        configs.append({"binary": binary, "file": f, "env": env,
                                        "where": f"{where}: ConfigMap {cm} key {key}"})
            if not found:
                err(where, f"--config {cfg} is not mounted from a ConfigMap")
    for (kind, oname), o in by_kind.items():
        if kind != "Service":
            continue
        sel = o["spec"].get("selector", {})
        match = [s for labels, s in templates if all(labels.get(k) == v for k, v in sel.items())]
        if not match:
            err(name, f"Service/{oname} selects no pod template")
        for p in o["spec"]["ports"]:
            tp = p.get("targetPort")
            if isinstance(tp, str) and not any(
                tp == cp.get("name") for s in match for c in s["containers"] for cp in c.get("ports", [])
            ):
                err(name, f"Service/{oname}: targetPort {tp} not a port of the selected pods")
    return by_kind, configs


# ---------------------------------------------------------------- PromQL

GRAFANA_VARS = [
    (re.compile(r"\$__rate_interval|\$\{__rate_interval\}"), "5m"),
    (re.compile(r"\$__interval|\$\{__interval\}"), "1m"),
    (re.compile(r"\$__range|\$\{__range\}"), "1h"),
    (re.compile(r"\$\{?(\w+)(:\w+)?\}?"), "var"),
]


def promql_refs(expr, where, component, out):
    """Parses expr (Grafana variables replaced) and records each metric selector."""
    text = expr
    for pat, repl in GRAFANA_VARS:
        text = pat.sub(repl, text)
    try:
        ast = pq.parse(text)
    except Exception as e:  # the parser raises ValueError with the position
        err(where, f"PromQL {expr!r}: {e}")
        return

    def selectors(node):
        found = []

        def visit(n):
            if isinstance(n, pq.VectorSelector):
                found.append(n)
            return True

        pq.walk(node, visit)
        return found

    for sel in selectors(ast):
        if not sel.name:
            err(where, f"selector without a metric name in {expr!r}")
        labels = [m.name for m in sel.matchers.matchers if m.name != "__name__"]
        out.append({"kind": "selector", "metric": sel.name, "labels": labels,
                    "component": component, "where": where})

    def visit(node):
        # Labels an aggregation groups by must exist on one of the metrics below it.
        if isinstance(node, pq.AggregateExpr) and node.modifier is not None \
                and node.modifier.type == pq.AggModifierType.By:
            names = sorted({s.name for s in selectors(node.expr)})
            for label in node.modifier.labels:
                out.append({"kind": "grouping", "metrics": names, "label": label,
                            "component": component, "where": where})
        return True

    pq.walk(ast, visit)


# ---------------------------------------------------------------- Grafana


def check_grafana(repo, k8s_services, out):
    gdir = os.path.join(repo, "deploy/grafana")
    for f in sorted(glob.glob(os.path.join(gdir, "**/*.yaml"), recursive=True)):
        for d in load_yaml_docs(f):
            if d.get("apiVersion") != 1:
                err(rel(f), "apiVersion must be 1")
            for ds in d.get("datasources", []):
                for key in ("name", "type", "uid", "url", "access"):
                    if key not in ds:
                        err(rel(f), f"datasource without {key}")
                if ds.get("type") == "loki":
                    m = re.match(r"http://([a-z0-9-]+)\.([a-z0-9-]+)\.svc(?:\.cluster\.local)?:(\d+)$",
                                 ds.get("url", ""))
                    if not m:
                        err(rel(f), f"loki url {ds.get('url')} is not http://<svc>.<ns>.svc:<port>")
                    elif (m.group(1), m.group(2), int(m.group(3))) not in k8s_services:
                        err(rel(f), f"loki url {ds['url']} names no Service port of deploy/kubernetes")
                for df in ds.get("jsonData", {}).get("derivedFields", []):
                    if "name" not in df or "matcherRegex" not in df:
                        err(rel(f), f"derived field without name/matcherRegex: {df}")
                    elif df.get("matcherType", "regex") == "regex":
                        try:
                            re.compile(df["matcherRegex"])
                        except re.error as e:
                            err(rel(f), f"derived field {df['name']}: {e}")
                    if "${" in df.get("url", "") and "$${" not in df["url"]:
                        err(rel(f), f"derived field {df['name']}: write $${{...}} (Grafana expands $ in provisioning files)")
            for p in d.get("providers", []):
                path = p.get("options", {}).get("path")
                if not path:
                    err(rel(f), f"dashboard provider {p.get('name')} without options.path")
    dashboards = sorted(glob.glob(os.path.join(gdir, "dashboards/*.json")))
    if not dashboards:
        err("deploy/grafana/dashboards", "no dashboards")
    uids = set()
    for f in dashboards:
        where = rel(f)
        try:
            with open(f) as fh:
                dash = json.load(fh)
        except json.JSONDecodeError as e:
            err(where, f"JSON: {e}")
            continue
        component = "agent" if "agent" in os.path.basename(f) else "server"
        if dash.get("uid") in uids or not dash.get("uid"):
            err(where, "dashboard uid missing or not unique")
        uids.add(dash.get("uid"))
        variables = {v["name"]: v for v in dash.get("templating", {}).get("list", [])}
        ds_vars = {n for n, v in variables.items() if v.get("type") == "datasource"}
        for n in ds_vars:
            if variables[n].get("query") != "prometheus":
                err(where, f"datasource variable {n} is not of type prometheus")

        def ds_ok(ref, at):
            if not isinstance(ref, dict) or ref.get("type") != "prometheus":
                err(where, f"{at}: datasource {ref!r} is not a prometheus reference")
                return
            uid = ref.get("uid", "")
            m = re.fullmatch(r"\$\{?(\w+)\}?", uid)
            if not m or m.group(1) not in ds_vars:
                err(where, f"{at}: datasource uid {uid!r} is not a datasource variable")

        for n, v in variables.items():
            if v.get("type") == "query":
                ds_ok(v.get("datasource"), f"variable {n}")
                q = v.get("query")
                q = q.get("query") if isinstance(q, dict) else q
                m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", q or "")
                if not m:
                    err(where, f"variable {n}: query {q!r} is not label_values(selector, label)")
                else:
                    promql_refs(m.group(1), f"{where} variable {n}", component, out)
                    out.append({"kind": "grouping", "metrics": [out[-1]["metric"]],
                                "label": m.group(2), "component": component,
                                "where": f"{where} variable {n}"})
        ids = set()
        panels = list(dash.get("panels", []))
        for p in list(panels):
            panels += p.get("panels", [])  # panels of collapsed rows
        for p in panels:
            at = f"panel {p.get('id')} {p.get('title')!r}"
            if not isinstance(p.get("id"), int) or p["id"] in ids:
                err(where, f"{at}: id missing or not unique")
            ids.add(p.get("id"))
            if "gridPos" not in p:
                err(where, f"{at}: no gridPos")
            if p.get("type") in ("row", "text"):
                continue
            ds_ok(p.get("datasource"), at)
            if not p.get("targets"):
                err(where, f"{at}: no targets")
            refids = set()
            for t in p.get("targets", []):
                ds_ok(t.get("datasource"), f"{at} target {t.get('refId')}")
                if t.get("refId") in refids:
                    err(where, f"{at}: refId {t.get('refId')} twice")
                refids.add(t.get("refId"))
                promql_refs(t.get("expr", ""), f"{where} {at}", component, out)


# ---------------------------------------------------------------- alert rules


def check_rules(repo, out):
    files = sorted(glob.glob(os.path.join(repo, "deploy/prometheus/*.rules.yaml")))
    if not files:
        err("deploy/prometheus", "no *.rules.yaml")
    names = set()
    for f in files:
        for d in load_yaml_docs(f):
            for g in d.get("groups", []):
                component = "agent" if "agent" in g["name"] else "server"
                for r in g.get("rules", []):
                    where = f"{rel(f)} {r.get('alert') or r.get('record')}"
                    if "alert" not in r:
                        err(where, "only alerting rules expected")
                        continue
                    if r["alert"] in names:
                        err(where, "alert name twice")
                    names.add(r["alert"])
                    if r.get("labels", {}).get("severity") not in ("critical", "warning", "info"):
                        err(where, "labels.severity must be critical, warning or info")
                    for a in ("summary", "description"):
                        if not r.get("annotations", {}).get(a):
                            err(where, f"annotation {a} missing")
                    if "for" in r and not re.fullmatch(r"\d+[smhd]", str(r["for"])):
                        err(where, f"for {r['for']!r} is not a duration")
                    unknown = set(r) - {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
                    if unknown:
                        err(where, f"unknown keys {sorted(unknown)}")
                    promql_refs(r.get("expr", ""), where, component, out)


def main():
    global REPO
    REPO, out_path = sys.argv[1], sys.argv[2]
    # Every YAML/JSON under deploy/ parses.
    for f in glob.glob(os.path.join(REPO, "deploy/**/*"), recursive=True):
        if f.endswith((".yaml", ".yml")):
            load_yaml_docs(f)
        elif f.endswith(".json"):
            try:
                json.load(open(f))
            except json.JSONDecodeError as e:
                err(rel(f), f"JSON: {e}")
    kdir = os.path.join(REPO, "deploy/kubernetes")
    out_dir = os.path.dirname(os.path.abspath(out_path))
    all_configs = []
    services = set()
    variants = [kdir] + sorted(
        os.path.dirname(p) for p in glob.glob(os.path.join(kdir, "overlays/*/kustomization.yaml")))
    for v in variants:
        objects = kustomize(v)
        by_kind, configs = check_objects(rel(v), objects, out_dir)
        all_configs += configs
        for (kind, name), o in by_kind.items():
            if kind == "Service":
                for p in o["spec"]["ports"]:
                    services.add((name, o["metadata"].get("namespace"), p["port"]))
    refs = []
    check_grafana(REPO, services, refs)
    check_rules(REPO, refs)
    # The base's configs appear again in overlays that do not replace them.
    seen, configs = set(), []
    for c in all_configs:
        text = open(c["file"]).read()
        if (c["binary"], text) not in seen:
            seen.add((c["binary"], text))
            configs.append(c)
    with open(out_path, "w") as f:
        json.dump({"configs": configs, "metrics": refs}, f, indent=1)
    if errors:
        print("\n".join(dict.fromkeys(errors)))
        sys.exit(1)
    print(f"deploy/: {len(configs)} configs, {len(refs)} metric selectors, checks passed")


if __name__ == "__main__":
    main()
