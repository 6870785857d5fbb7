#!/usr/bin/env python3
"""Validates OCSF documents (JSON lines on stdin) against the published
OCSF schema: each document's class and profiles are looked up in the
schema export that the `ocsf-json-schema` package carries, and checked with
`jsonschema` (draft 2020-12). Prints one summary line per class; exits 1 on
the first invalid document, 3 when the packages are missing."""

import json
import sys
from collections import Counter

try:
    from jsonschema import Draft202012Validator
    from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema
except ImportError as e:
    print(f"missing package ({e}): pip install ocsf-json-schema jsonschema", file=sys.stderr)
    sys.exit(3)

schemas = {}
validators = {}
seen = Counter()
for n, line in enumerate(sys.stdin, 1):
    if not line.strip():
        continue
    doc = json.loads(line)
    meta = doc.get("metadata", {})
    version = meta.get("version")
    if version not in schemas:
        schemas[version] = OcsfJsonSchemaEmbedded(get_ocsf_schema(version=version))
    schema = schemas[version]
    profiles = tuple(sorted(meta.get("profiles", [])))
    key = (version, doc.get("class_uid"), profiles)
    if key not in validators:
        name = schema.lookup_class_name_from_uid(class_uid=doc["class_uid"])
        validators[key] = Draft202012Validator(
            schema.get_class_schema(class_name=name, profiles=list(profiles))
        )
    errors = sorted(validators[key].iter_errors(doc), key=lambda e: list(e.path))
    if errors:
        for e in errors[:5]:
            print(f"line {n}: class {doc['class_uid']}: {'/'.join(map(str, e.path))}: {e.message}")
        sys.exit(1)
    if doc["type_uid"] != doc["class_uid"] * 100 + doc["activity_id"]:
        print(f"line {n}: type_uid {doc['type_uid']} is not class_uid * 100 + activity_id")
        sys.exit(1)
    seen[doc["class_uid"]] += 1

for uid, count in sorted(seen.items()):
    print(f"class {uid}: {count} valid")
