"""Validates generated texts against JSON Schemas with python3-jsonschema (Debian's package).

Reads JSON lines {"schema": {...}, "text": "..."} on stdin and prints one line per input:
"ok", or "invalid: <why>" when the text is not JSON or does not satisfy the schema.
"""
import json
import sys

import jsonschema

for line in sys.stdin:
    case = json.loads(line)
    try:
        instance = json.loads(case["text"])
        jsonschema.validate(instance, case["schema"], cls=jsonschema.Draft202012Validator)
        print("ok")
    except (ValueError, jsonschema.ValidationError) as e:
        print("invalid: " + str(e).replace("\n", " ")[:300])
