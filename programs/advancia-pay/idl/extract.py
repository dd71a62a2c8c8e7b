#!/usr/bin/env python3
"""Assembles the Anchor IDL from the output of the `__anchor_private_print_idl` tests.

Same steps as anchor-lang-idl 0.1.4's `IdlBuilder::build` (which the Anchor CLI runs): read the
printed address / const / event / errors / program sections, merge event types into the
program's types, shorten module paths where unambiguous, sort. Usage: extract.py OUTPUT_FILE.
"""
import json
import re
import sys


def main(path):
    lines = open(path, encoding="utf-8").read().splitlines()
    address, constants, events, errors, types, idl = "", [], [], None, {}, None
    state, buf = None, []
    for line in lines:
        if state is None:
            if line.startswith("--- IDL begin ") and line.endswith(" ---"):
                state, buf = line[len("--- IDL begin "):-4], []
            continue
        if state == "address":
            address = re.sub(r"[^0-9A-Za-z]", "", line)
            state = None
            continue
        if line == f"--- IDL end {state} ---":
            body = json.loads("\n".join(buf))
            if state == "const":
                constants.append(body)
            elif state == "event":
                events.append(body["event"])
                for t in body["types"]:
                    types[t["name"]] = t
            elif state == "errors":
                errors = body
            elif state == "program":
                idl = body
            state = None
            continue
        buf.append(line)
    if idl is None:
        sys.exit("no IDL program section in the test output")
    idl["address"] = address
    idl["constants"] = constants
    idl["events"] = events
    idl["errors"] = errors or []
    for t in idl.get("types", []):
        types[t["name"]] = t
    idl["types"] = [types[k] for k in sorted(types)]
    text = json.dumps(idl)
    for m in re.finditer(r'"(\w+::)+(\w+)"', json.dumps(idl)):
        full, name = m.group(0), m.group(2)
        replaced = text.replace(full, f'"{name}"')
        if not re.search(rf'"(\w+::)+{name}"', replaced):
            text = replaced
    idl = json.loads(text)
    for key in ("accounts", "constants", "events", "instructions", "types"):
        idl.setdefault(key, [])
        idl[key].sort(key=lambda item: item["name"])
    json.dump(idl, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
