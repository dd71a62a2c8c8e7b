"""Prints the messages of a maildir as JSON, decoded by Python's email package (headers
per RFC 2047, bodies per their transfer encoding): an independent reading of what our
SMTP client sent."""
import json
import mailbox
import sys
from email import policy
from email.parser import BytesParser

out = []
for key in sorted(mailbox.Maildir(sys.argv[1], create=False).keys()):
    path = mailbox.Maildir(sys.argv[1], create=False)._lookup(key)
    with open(f"{sys.argv[1]}/{path}", "rb") as f:
        msg = BytesParser(policy=policy.default).parse(f)
    parts = [
        {"type": p.get_content_type(), "content": p.get_content()}
        for p in msg.walk()
        if not p.is_multipart()
    ]
    out.append({
        "from": str(msg["From"]),
        "to": str(msg["To"]),
        "subject": str(msg["Subject"]),
        "message_id": str(msg["Message-ID"]),
        "content_type": msg.get_content_type(),
        "parts": parts,
    })
json.dump(out, sys.stdout)
