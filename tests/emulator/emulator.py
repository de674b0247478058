#!/usr/bin/env python3
"""Local emulator of the email providers crm_integrations talks to, for tests and `make demo`.

Speaks each provider's request and response shapes and error bodies, records every request it
receives, and injects faults on command. Binds to 127.0.0.1 only.

  Resend   POST /emails, POST /emails/batch; error body {"statusCode", "name", "message"};
           Idempotency-Key replay (409 invalid_idempotent_request for the same key with a
           different payload, 409 concurrent_idempotent_requests while the first request with
           that key is still being processed); API keys start with re_
  Gmail    POST /gmail/v1/users/me/messages/send {"raw": base64url RFC 5322, "threadId"};
           Google error body {"error": {"code", "message", "errors", "status"}}
  Graph    POST /v1.0/me/sendMail: 202 with no body; {"error": {"code", "message"}}
  Google   POST /token (grant_type=refresh_token, form-encoded)
  Microsoft POST /{tenant}/oauth2/v2.0/token (rotates the refresh token, as Microsoft does)
  The token endpoints answer 400 {"error": "invalid_grant", ...} to an unknown or revoked
  refresh token; Gmail and Graph answer 401 to an access token they did not issue or that
  expired.

Control endpoints (not part of any provider's API):
  GET  /_emulator/requests            every request received: [{method, path, headers, body, replayed, response}]
  POST /_emulator/reset               forget requests, faults and idempotency keys
  POST /_emulator/faults              queue faults, consumed in order by matching requests:
       [{"path": "/emails", "status": 503, "count": 2, "retry_after": "30", "delay_ms": 0, "drop": false}]
  POST /_emulator/rate_limit          {"per_second": 50}: answer 429 (Retry-After: 1), as Resend
                                      does, to requests beyond that rate (sliding 1 s window); 0 = off
  POST /_emulator/oauth               {"refresh_tokens": {"TOKEN": "google"|"microsoft"},
                                       "access_tokens": {"TOKEN": "google"|"microsoft"},
                                       "revoke": ["TOKEN", ...]}: tokens the endpoints accept
                                      (access tokens seeded here never expire), and refresh
                                      tokens to refuse from now on with invalid_grant

Usage: emulator.py PORT   (prints "ready" on stdout once listening)
"""
import base64
import email
import email.policy
import json
import re
import secrets
import sys
import threading
import time
import uuid
from urllib.parse import parse_qs
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API_KEY_PREFIX = "re_"
LOCK = threading.Lock()
STATE = {"requests": [], "faults": [], "idempotency": {}, "rate": 0, "recent": [],
         "refresh": {}, "access": {}, "revoked": set(), "in_flight": set()}
ACCESS_TOKEN_LIFETIME = 3599
MS_TOKEN_PATH = re.compile(r"^/[^/]+/oauth2/v2\.0/token$")


def resend_error(status, name, message):
    return status, {"statusCode": status, "name": name, "message": message}


def google_error(status, message, reason, state):
    return status, {"error": {"code": status, "message": message,
                              "errors": [{"message": message, "domain": "global", "reason": reason}],
                              "status": state}}


def graph_error(status, code, message):
    return status, {"error": {"code": code, "message": message,
                              "innerError": {"date": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                             "request-id": str(uuid.uuid4())}}}


def bearer_ok(headers, provider):
    token = headers.get("authorization", "")[len("Bearer "):]
    with LOCK:
        entry = STATE["access"].get(token)
    return entry is not None and entry[0] == provider and (entry[1] is None or entry[1] > time.time())


def issue_token(form, provider):
    """The refresh-token grant of RFC 6749 section 6, as Google and Microsoft answer it."""
    grant = (form.get("grant_type") or [""])[0]
    refresh = (form.get("refresh_token") or [""])[0]
    if grant != "refresh_token":
        return 400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type: " + grant}
    if not (form.get("client_id") or [""])[0] or not (form.get("client_secret") or [""])[0]:
        return 401, {"error": "invalid_client", "error_description": "The OAuth client was not found."}
    with LOCK:
        known = STATE["refresh"].get(refresh) == provider and refresh not in STATE["revoked"]
    if not known:
        if provider == "google":
            return 400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
        return 400, {"error": "invalid_grant",
                     "error_description": "AADSTS70000: The provided grant has expired due to it being revoked, a fresh auth token is needed.",
                     "error_codes": [70000], "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ"),
                     "trace_id": str(uuid.uuid4()), "correlation_id": str(uuid.uuid4())}
    access = ("ya29.emu-" if provider == "google" else "EwB.emu-") + secrets.token_urlsafe(16)
    with LOCK:
        STATE["access"][access] = (provider, time.time() + ACCESS_TOKEN_LIFETIME)
    if provider == "google":
        return 200, {"access_token": access, "expires_in": ACCESS_TOKEN_LIFETIME,
                     "scope": "https://www.googleapis.com/auth/gmail.send", "token_type": "Bearer"}
    rotated = "M.R3_emu-" + secrets.token_urlsafe(16)
    with LOCK:
        STATE["refresh"][rotated] = "microsoft"
    return 200, {"token_type": "Bearer", "scope": (form.get("scope") or [""])[0], "expires_in": ACCESS_TOKEN_LIFETIME,
                 "ext_expires_in": ACCESS_TOKEN_LIFETIME, "access_token": access, "refresh_token": rotated}


def mime_summary(raw):
    """The parts of an RFC 5322 message, for assertions: headers in order, then each leaf part."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    parts = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=True) or b""
        entry = {"content_type": part.get_content_type(), "filename": part.get_filename()}
        if part.get_content_maintype() == "text" and not part.get_filename():
            entry["text"] = payload.decode(part.get_content_charset() or "utf-8", "replace")
        else:
            entry["base64"] = base64.b64encode(payload).decode()
        parts.append(entry)
    return {"headers": [[k, str(v)] for k, v in msg.items()], "structure": msg.get_content_type(), "parts": parts}


def gmail_send(body, headers, record):
    if not bearer_ok(headers, "google"):
        return google_error(401, "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                                 "login cookie or other valid authentication credential.", "authError", "UNAUTHENTICATED")
    if not isinstance(body, dict) or not isinstance(body.get("raw"), str):
        return google_error(400, "'raw' RFC822 payload message string or uploading message via /upload/* URL required",
                            "invalidArgument", "INVALID_ARGUMENT")
    raw = body["raw"]
    try:
        data = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    except ValueError:
        return google_error(400, "Invalid value for ByteString", "invalidArgument", "INVALID_ARGUMENT")
    if "+" in raw or "/" in raw:
        return google_error(400, "Invalid value for ByteString: not base64url", "invalidArgument", "INVALID_ARGUMENT")
    summary = mime_summary(data)
    record["mime"] = summary
    names = {k.lower() for k, _ in summary["headers"]}
    if "to" not in names and "cc" not in names and "bcc" not in names:
        return google_error(400, "Recipient address required", "invalidArgument", "INVALID_ARGUMENT")
    if "from" not in names:
        return google_error(400, "Invalid From header", "invalidArgument", "INVALID_ARGUMENT")
    mid = secrets.token_hex(8)
    return 200, {"id": mid, "threadId": body.get("threadId") or mid, "labelIds": ["SENT"]}


def graph_send(body, headers):
    if not bearer_ok(headers, "microsoft"):
        return graph_error(401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.")
    msg = body.get("message") if isinstance(body, dict) else None
    if not isinstance(msg, dict):
        return graph_error(400, "ErrorInvalidRequest", "Cannot read the request body.")
    if not msg.get("toRecipients") and not msg.get("ccRecipients") and not msg.get("bccRecipients"):
        return graph_error(400, "ErrorInvalidRecipients", "At least one recipient isn't valid., A message can't be sent because it contains no recipients.")
    for h in msg.get("internetMessageHeaders") or []:
        if not h.get("name", "").lower().startswith("x-"):
            return graph_error(400, "InvalidInternetMessageHeader",
                               "The internet message header name '%s' should start with 'x-' or 'X-'." % h.get("name"))
    return 202, None


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
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        if (self.headers.get("Content-Type") or "").startswith("application/x-www-form-urlencoded"):
            return {k: v for k, v in parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True).items()}
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
                STATE.update(requests=[], faults=[], idempotency={}, rate=0, recent=[],
                             refresh={}, access={}, revoked=set(), in_flight=set())
            return self.reply(200, {"ok": True})
        if self.path == "/_emulator/oauth":
            with LOCK:
                STATE["refresh"].update(body.get("refresh_tokens") or {})
                for token, provider in (body.get("access_tokens") or {}).items():
                    STATE["access"][token] = (provider, None)
                STATE["revoked"].update(body.get("revoke") or [])
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

        # Resend: authentication, then the idempotency key (replay, conflict), before anything
        # else; the key stays "in progress" until the answer, injected delays included.
        key = None
        if self.path in ("/emails", "/emails/batch"):
            if not headers.get("authorization", "").startswith("Bearer " + API_KEY_PREFIX):
                return self.reply(*resend_error(401, "missing_api_key", "Missing API key in the authorization header."))
            key = headers.get("idempotency-key")
        payload = json.dumps(body, sort_keys=True)
        if key:
            with LOCK:
                seen = STATE["idempotency"].get((self.path, key))
                busy = seen is None and (self.path, key) in STATE["in_flight"]
                if seen is None and not busy:
                    STATE["in_flight"].add((self.path, key))
            if busy:
                result = resend_error(409, "concurrent_idempotent_requests",
                                      "Same idempotency key used while original request is still in progress.")
                record["response"] = result[1]
                return self.reply(*result)
            if seen is not None:
                if seen[0] != payload:
                    result = resend_error(409, "invalid_idempotent_request",
                                          "Same idempotency key used with a different request payload. Change your idempotency key or payload.")
                    record["response"] = result[1]
                    return self.reply(*result)
                record["replayed"] = True
                return self.reply(*seen[1])
        try:
            result = self.answer(fault, body, headers, record)
            if result is None:  # connection dropped
                return
            if key and 200 <= result[0] < 300:
                with LOCK:
                    STATE["idempotency"][(self.path, key)] = (payload, result)
        finally:
            if key:
                with LOCK:
                    STATE["in_flight"].discard((self.path, key))
        extra = result[2] if len(result) > 2 else None
        return self.reply(result[0], result[1], headers=extra)

    def answer(self, fault, body, headers, record):
        """(status, body[, headers]) for a request, or None when the connection was dropped."""
        if fault:
            if fault.get("delay_ms"):
                time.sleep(fault["delay_ms"] / 1000)
            if fault.get("drop"):
                self.close_connection = True
                self.connection.shutdown(2)
                return None
            if fault.get("invalid_grant"):
                return 400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
            if fault.get("status"):
                extra = {"Retry-After": str(fault["retry_after"])} if fault.get("retry_after") else {}
                name = "rate_limit_exceeded" if fault["status"] == 429 else "internal_server_error"
                result = resend_error(fault["status"], name, "Injected fault.")
                record["response"] = result[1]
                return result[0], result[1], extra

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
            return result[0], result[1], {"Retry-After": "1"}
        if self.path == "/token" or MS_TOKEN_PATH.match(self.path):
            result = issue_token(body if isinstance(body, dict) else {}, "google" if self.path == "/token" else "microsoft")
        elif self.path == "/gmail/v1/users/me/messages/send":
            result = gmail_send(body, headers, record)
        elif self.path == "/v1.0/me/sendMail":
            result = graph_send(body, headers)
        elif self.path == "/emails":
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
        return result

def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 18025
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
