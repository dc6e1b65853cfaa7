"""Holds the server to an OpenAPI 3.1 document: every recorded response must have a status
code the document lists for its operation, a media type it lists for that status, and a
JSON body that validates against the schema it gives.

Usage: check_responses.py SPEC.yaml RESPONSES.json, where RESPONSES.json is a list of
{"method", "path" (the template, as in the document), "status", "content_type", "body"}
(body: the JSON value, or null for other media types), or {"schema", "body"}: a value
that is no response (the claims of a notification token) and must validate against the
component schema of that name. Prints one line per failure and exits 1 if there is any.
"""
import json
import sys

import jsonschema
import yaml


def deref(spec, node):
    """Follows a local $ref (responses are referenced from components)."""
    while isinstance(node, dict) and "$ref" in node:
        target = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def main():
    spec = yaml.safe_load(open(sys.argv[1], encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema({"$defs": spec["components"]["schemas"]})
    records = json.load(open(sys.argv[2], encoding="utf-8"))
    failures = []
    for r in records:
        if "schema" in r:
            schema = {"$ref": f'#/components/schemas/{r["schema"]}', "components": spec["components"]}
            schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
            for e in sorted(jsonschema.Draft202012Validator(schema).iter_errors(r["body"]), key=str):
                failures.append(f'{r["schema"]}: {e.message} at {list(e.absolute_path)} in {json.dumps(r["body"])}')
            continue
        where = f'{r["method"].upper()} {r["path"]} {r["status"]}'
        operation = spec["paths"].get(r["path"], {}).get(r["method"].lower())
        if operation is None:
            failures.append(f"{where}: the document has no such operation")
            continue
        response = operation["responses"].get(str(r["status"]))
        if response is None:
            failures.append(f"{where}: status not documented")
            continue
        response = deref(spec, response)
        media = (r["content_type"] or "").split(";")[0].strip()
        content = response.get("content", {})
        if media not in content:
            failures.append(f"{where}: media type {media!r} not documented (documented: {sorted(content)})")
            continue
        if media != "application/json":
            continue
        schema = dict(content[media]["schema"])
        schema["components"] = spec["components"]
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(r["body"]), key=str)
        for e in errors:
            failures.append(f"{where}: {e.message} at {list(e.absolute_path)} in {json.dumps(r['body'])}")
    for f in failures:
        print(f)
    print(f"{len(records)} responses checked, {len(failures)} failures")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
