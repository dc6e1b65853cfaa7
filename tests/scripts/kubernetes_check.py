"""Checks deploy/kubernetes/: every document valid against the Kubernetes schemas that
kubernetes-validate ships (strict: unknown fields refused), and what the deployment
promises: at least two replicas, /readyz readiness, /healthz liveness and a startup probe,
the restricted security context (non-root, read-only root file system, no capability, no
privilege escalation, RuntimeDefault seccomp), requests and limits, a PodDisruptionBudget
selecting the pods, placeholder secrets only, every secret file the environment names
mounted, and the policies ConfigMap equal to policies/ with every key mapped to its path.

    python kubernetes_check.py DEPLOY_KUBERNETES_DIR POLICIES_DIR [ROOT]

Prints "ok: ..." and exits 0, or prints each problem and exits 1. With ROOT, also writes
every file the Deployment mounts from its ConfigMaps and Secret under ROOT at its path in
the pod (ROOT/var/lib/hawiya/hawiya.toml, ROOT/etc/hawiya/policies/..., ROOT/run/secrets/...),
for a test to run hawiya on what the pods would see.
"""
import glob
import os
import sys

import kubernetes_validate
import yaml

KUBERNETES_VERSION = "1.30.0"  # the oldest Kubernetes these manifests are meant for

directory, policies_dir = sys.argv[1], sys.argv[2]
problems = []
docs = {}
for path in sorted(glob.glob(os.path.join(directory, "*.yaml"))):
    with open(path) as f:
        for doc in yaml.safe_load_all(f):
            if not doc:
                continue
            name = f"{os.path.basename(path)}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
            try:
                kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as e:
                problems.append(f"{name}: {'.'.join(map(str, e.path))}: {e.message}")
            except Exception as e:  # an unknown kind or version is a problem, not a pass
                problems.append(f"{name}: not validated: {e}")
            docs[(doc["kind"], doc["metadata"]["name"])] = doc


def need(key):
    if key not in docs:
        problems.append(f"no {key[0]} {key[1]}")
        return {}
    return docs[key]


deployment = need(("Deployment", "hawiya"))
spec = deployment.get("spec", {})
pod = spec.get("template", {}).get("spec", {})
labels = spec.get("template", {}).get("metadata", {}).get("labels", {})
if spec.get("replicas", 1) < 2:
    problems.append(f"Deployment: {spec.get('replicas', 1)} replica(s), not at least 2")
pod_security = pod.get("securityContext", {})
if pod_security.get("runAsNonRoot") is not True or pod_security.get("seccompProfile", {}).get("type") != "RuntimeDefault":
    problems.append("Deployment: the pod does not run as non-root under RuntimeDefault seccomp")
if pod.get("automountServiceAccountToken") is not False:
    problems.append("Deployment: the pod mounts a service account token it does not need")
mounted_files = {}
volumes = {v["name"]: v for v in pod.get("volumes", [])}
for container in pod.get("containers", []):
    c = container["name"]
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz"), ("startupProbe", "/healthz")):
        if container.get(probe, {}).get("httpGet", {}).get("path") != path:
            problems.append(f"{c}: {probe} does not ask {path}")
    sc = container.get("securityContext", {})
    if not (sc.get("readOnlyRootFilesystem") is True and sc.get("allowPrivilegeEscalation") is False and sc.get("capabilities", {}).get("drop") == ["ALL"]):
        problems.append(f"{c}: not read-only root, no privilege escalation, ALL capabilities dropped")
    resources = container.get("resources", {})
    for kind in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            if resource not in resources.get(kind, {}):
                problems.append(f"{c}: no {resource} {kind}")
    for mount in container.get("volumeMounts", []):
        volume = volumes.get(mount["name"], {})
        sources = volume.get("projected", {}).get("sources", [volume])
        for source in sources:
            for kind in ("secret", "configMap"):
                for item in source.get(kind, {}).get("items", []):
                    mounted_files[os.path.join(mount["mountPath"], item["path"])] = (kind, item["key"], source[kind].get("name") or source[kind].get("secretName"))
    for env in container.get("env", []):
        if env["name"].endswith("_FILE") and env.get("value") not in mounted_files:
            problems.append(f"{c}: {env['name']}={env.get('value')} is not a mounted file")
        if any(word in env["name"] for word in ("PIN", "SECRET", "PASSWORD")) and not env["name"].endswith("_FILE"):
            problems.append(f"{c}: {env['name']} puts a secret in the environment")
    if "/var/lib/hawiya/provider-secret" not in mounted_files or "/var/lib/hawiya/hawiya.toml" not in mounted_files:
        problems.append(f"{c}: the data directory lacks hawiya.toml or provider-secret")

pdb = need(("PodDisruptionBudget", "hawiya"))
if pdb and pdb["spec"]["selector"]["matchLabels"].items() - labels.items():
    problems.append("PodDisruptionBudget: its selector does not select the pods")
service = need(("Service", "hawiya"))
if service and service["spec"]["selector"].items() - labels.items():
    problems.append("Service: its selector does not select the pods")

secret = need(("Secret", "hawiya-secrets"))
for key in ("pkcs11-pin", "operator-secret", "provider-secret"):
    value = secret.get("stringData", {}).get(key, "")
    if "REPLACE" not in value:
        problems.append(f"Secret: {key} is not a placeholder")
for kind, key, _ in mounted_files.values():
    if kind == "secret" and key not in secret.get("stringData", {}):
        problems.append(f"Secret: no {key}, which the Deployment mounts")

# The policies ConfigMap: policies/ exactly, every key mapped back to its path.
config_map = need(("ConfigMap", "hawiya-policies")).get("data", {})
expected = {}
for root, dirs, names in os.walk(policies_dir):
    dirs[:] = [d for d in dirs if d != "src"]
    for name in names:
        if name.endswith(".toml") and name != "Cargo.toml":
            path = os.path.relpath(os.path.join(root, name), policies_dir)
            with open(os.path.join(root, name), encoding="utf-8") as f:
                expected[path.replace("/", ".")] = f.read()
if config_map != expected:
    stale = sorted(k for k in expected.keys() | config_map.keys() if expected.get(k) != config_map.get(k))
    problems.append(f"ConfigMap hawiya-policies differs from policies/ at {stale}: run deploy/kubernetes/policies-configmap.py > deploy/kubernetes/policies.yaml")
mapped = {key: path for path, (kind, key, _) in mounted_files.items() if kind == "configMap" and path.startswith("/etc/hawiya/policies/")}
for key in expected:
    head, _, tail = key.partition(".")
    path = f"{head}/{tail}" if "." in tail else key
    if mapped.get(key) != f"/etc/hawiya/policies/{path}":
        problems.append(f"Deployment: policy {key} is not mounted at /etc/hawiya/policies/{path}")

if problems:
    print("\n".join(problems))
    sys.exit(1)
if len(sys.argv) > 3:
    for path, (kind, key, name) in mounted_files.items():
        source = docs[("Secret" if kind == "secret" else "ConfigMap", name)]
        target = os.path.join(sys.argv[3], path.lstrip("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w", encoding="utf-8") as f:
            f.write(source.get("stringData" if kind == "secret" else "data")[key])
print(f"ok: {len(docs)} resources valid for Kubernetes {KUBERNETES_VERSION}, {spec['replicas']} replicas, {len(expected)} policy files")
