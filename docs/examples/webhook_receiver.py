"""A webhook receiver for reelgate's TASK_END events, with the standard library and the SDK only.

    REELGATE_WEBHOOK_SECRET=whsec_... python webhook_receiver.py 8080

It answers at once (work that takes long belongs in a queue of your own: a receiver that answers
late is retried) and processes each event once, however often it is delivered.
"""

from __future__ import annotations

import os
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

from reelgate.client import WebhookVerificationError, verify_webhook

SECRET = os.environ["REELGATE_WEBHOOK_SECRET"]
#: Ids already processed. Keep them somewhere durable in a real application.
seen: set[str] = set()


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            event = verify_webhook(SECRET, dict(self.headers), body)
        except WebhookVerificationError:
            self.send_response(400)  # not from reelgate, or replayed: ignore it
            self.end_headers()
            return
        webhook_id = self.headers["webhook-id"]
        if webhook_id not in seen:
            seen.add(webhook_id)
            task = event.task()  # the same object as /openapi/v2/query
            urls = [item.url for item in task.results or []]
            print(f"task {task.task_id} ended {task.status.value}: {urls}", flush=True)
        self.send_response(204)
        self.end_headers()


if __name__ == "__main__":
    HTTPServer(("127.0.0.1", int(sys.argv[1])), Receiver).serve_forever()
