#!/usr/bin/env python3
"""Local emulator of the email providers crm_integrations talks to, for tests and `make demo`.

Speaks Resend's request and response shapes (POST /emails, POST /emails/batch, its error body
{"statusCode", "name", "message"}, Idempotency-Key replay), records every request it receives,
and injects faults on command. Binds to 127.0.0.1 only.

Control endpoints (not part of any provider's API):
  GET  /_emulator/requests            every request received: [{method, path, headers, body, replayed, response}]
  POST /_emulator/reset               forget requests, faults and idempotency keys
  POST /_emulator/faults              queue faults, consumed in order by matching requests:
       [{"path": "/emails", "status": 503, "count": 2, "retry_after": "30", "delay_ms": 0, "drop": false}]
  POST /_emulator/rate_limit          {"per_second": 50}: answer 429 (Retry-After: 1), as Resend
                                      does, to requests beyond that rate (sliding 1 s window); 0 = off

Usage: emulator.py PORT   (prints "ready" on stdout once listening)
"""
import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API_KEY_PREFIX = "re_"
LOCK = threading.Lock()
STATE = {"requests": [], "faults": [], "idempotency": {}, "rate": 0, "recent": []}


def resend_error(status, name, message):
    return status, {"statusCode": status, "name": name, "message": message}


def validate_email(e):
    if not isinstance(e, dict):
        return "email must be an object"
    for field in ("from", "to", "subject"):
        if not e.get(field):
            return f"Missing `{field}` field."
    if not (e.get("html") or e.get("text")):
        return "Missing `html` or `text` field."
    to = e["to"] if isinstance(e["to"], list) else [e["to"]]
    if len(to) > 50:
        return "Too many recipients: `to` accepts at most 50."
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, a kept-alive client waits for the
    # delayed ACK (~40 ms) between them. Real APIs do not behave like that.
    disable_nagle_algorithm = True

    def log_message(self, *args):  # quiet
        pass

    def reply(self, status, body, headers=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return raw.decode("utf-8", "replace")

    def do_GET(self):
        if self.path == "/_emulator/requests":
            with LOCK:
                return self.reply(200, STATE["requests"])
        return self.reply(*resend_error(404, "not_found", "The requested endpoint does not exist."))

    def do_POST(self):
        body = self.read_body()
        if self.path == "/_emulator/reset":
            with LOCK:
                STATE.update(requests=[], faults=[], idempotency={}, rate=0, recent=[])
            return self.reply(200, {"ok": True})
        if self.path == "/_emulator/rate_limit":
            with LOCK:
                STATE.update(rate=int(body.get("per_second", 0)), recent=[])
            return self.reply(200, {"ok": True})
        if self.path == "/_emulator/faults":
            with LOCK:
                for f in body if isinstance(body, list) else [body]:
                    STATE["faults"].extend([f] * int(f.get("count", 1)))
            return self.reply(200, {"ok": True})

        headers = {k.lower(): v for k, v in self.headers.items()}
        record = {"method": "POST", "path": self.path, "headers": headers, "body": body, "replayed": False,
                  "at": time.time()}
        with LOCK:
            STATE["requests"].append(record)
            fault = None
            for i, f in enumerate(STATE["faults"]):
                if f.get("path", self.path) == self.path:
                    fault = STATE["faults"].pop(i)
                    break
        if fault:
            if fault.get("delay_ms"):
                time.sleep(fault["delay_ms"] / 1000)
            if fault.get("drop"):
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if fault.get("status"):
                extra = {"Retry-After": str(fault["retry_after"])} if fault.get("retry_after") else {}
                name = "rate_limit_exceeded" if fault["status"] == 429 else "internal_server_error"
                return self.reply(*resend_error(fault["status"], name, "Injected fault."), headers=extra)

        with LOCK:
            limited = False
            if STATE["rate"] > 0:
                now = time.monotonic()
                STATE["recent"] = [t for t in STATE["recent"] if now - t < 1.0]
                limited = len(STATE["recent"]) >= STATE["rate"]
                if not limited:
                    STATE["recent"].append(now)
        if limited:
            result = resend_error(429, "rate_limit_exceeded", "Too many requests. You can only make %d requests per second." % STATE["rate"])
            record["response"] = result[1]
            return self.reply(*result, headers={"Retry-After": "1"})
        if not headers.get("authorization", "").startswith("Bearer " + API_KEY_PREFIX):
            return self.reply(*resend_error(401, "missing_api_key", "Missing API key in the authorization header."))
        key = headers.get("idempotency-key")
        if key:
            with LOCK:
                seen = STATE["idempotency"].get((self.path, key))
            if seen is not None:
                record["replayed"] = True
                return self.reply(*seen)

        if self.path == "/emails":
            problem = validate_email(body)
            result = resend_error(422, "validation_error", problem) if problem else (200, {"id": str(uuid.uuid4())})
        elif self.path == "/emails/batch":
            if not isinstance(body, list) or not 1 <= len(body) <= 100:
                result = resend_error(422, "validation_error", "The batch must hold 1 to 100 emails.")
            else:
                problems = [p for p in (validate_email(e) for e in body) if p]
                result = (resend_error(422, "validation_error", problems[0]) if problems
                          else (200, {"data": [{"id": str(uuid.uuid4())} for _ in body]}))
        else:
            result = resend_error(404, "not_found", "The requested endpoint does not exist.")
        record["response"] = result[1]
        if key and 200 <= result[0] < 300:
            with LOCK:
                STATE["idempotency"][(self.path, key)] = result
        return self.reply(*result)


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 18025
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
