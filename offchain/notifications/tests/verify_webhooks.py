"""Verifies Standard Webhooks deliveries with the reference implementation (PyPI
`standardwebhooks`), independently of our Rust signer.

stdin: {"secret": "whsec_...", "deliveries": [{"headers": {...}, "body_b64": "..."}]}
stdout: one line per delivery, `ok <webhook-id> <type>` or `bad <webhook-id> <reason>`.
"""
import base64
import json
import sys

from standardwebhooks.webhooks import Webhook

req = json.load(sys.stdin)
wh = Webhook(req["secret"])
for d in req["deliveries"]:
    body = base64.b64decode(d["body_b64"])
    try:
        payload = wh.verify(body, d["headers"])
        print("ok", d["headers"]["webhook-id"], payload["type"])
    except Exception as e:  # noqa: BLE001 - report every failure kind
        print("bad", d["headers"].get("webhook-id"), type(e).__name__)
