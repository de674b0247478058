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
  Google   GET /o/oauth2/v2/auth (the consent screen: a 302 back with code and state), POST /token
           (authorization_code with PKCE S256, refresh_token; form-encoded), POST /revoke,
           GET /v1/userinfo
  Microsoft GET /{tenant}/oauth2/v2.0/authorize, POST /{tenant}/oauth2/v2.0/token (code with PKCE,
           refresh: rotates the refresh token, as Microsoft does), Graph GET /v1.0/me
  Stripe   POST /v1/checkout/sessions, POST /v1/payment_intents (stripe_api.py)
  Maps     GET /maps/api/geocode/json, POST /distanceMatrix/v2:computeRouteMatrix (maps.py)
  Resend   GET /domains
  Contacts GET /v1/people/me/connections, GET /v1/otherContacts (People API), GET
           /v1.0/me/contacts/delta (Graph); drafts: POST /gmail/v1/users/me/drafts, POST
           /v1.0/me/messages (contacts.py)
  The token endpoints answer 400 {"error": "invalid_grant", ...} to an unknown or revoked
  refresh token; Gmail and Graph answer 401 to an access token they did not issue or that
  expired.

Control endpoints (not part of any provider's API):
  GET  /_emulator/requests            every request received: [{method, path, headers, body, replayed, response}]
  POST /_emulator/reset               forget requests, faults and idempotency keys
  POST /_emulator/faults              queue faults, consumed in order by matching requests:
       [{"path": "/emails", "status": 503, "count": 2, "retry_after": "30", "delay_ms": 0, "drop": false}]
       ("drop": the connection closes unanswered; "drop_after": the request is carried out, then
       the connection closes unanswered: a lost 200)
  POST /_emulator/rate_limit          {"per_second": 50}: answer 429 (Retry-After: 1), as Resend
                                      does, to requests beyond that rate (sliding 1 s window); 0 = off
  POST /_emulator/stripe              {"errors": [{"status", "type", "code", "param", "message"}]}: answered first
  POST /_emulator/contacts            address books: people to add, change, delete, seed; expire
                                      their sync tokens (contacts.py)
  POST /_emulator/maps                {"statuses": ["OVER_QUERY_LIMIT", ...]}: Geocoding answers these first
  POST /_emulator/oauth               {"app": {"users": {"google": ADDRESS, "microsoft": ADDRESS},
                                       "consent": "deny", "drop_scopes": [...], "redirect_uris": [...],
                                       "client_secret": S, "tenant": ID, "no_refresh_token": true,
                                       "resend_domains": [{"name", "status"}]}: the OAuth app, the user
                                      at the consent screen, and Resend's domains;
                                      {"refresh_tokens": {"TOKEN": "google"|"microsoft"},
                                       "access_tokens": {"TOKEN": "google"|"microsoft"},
                                       "revoke": ["TOKEN", ...], "owners": {"TOKEN": ADDRESS}}:
                                      tokens the endpoints accept
                                      (access tokens seeded here never expire), and refresh
                                      tokens to refuse from now on with invalid_grant

One module per provider (resend.py, google.py, microsoft.py; oauth.py for the token endpoints
both use), each with its ROUTES; this file is the server, the control API, faults and the
rate limit, which apply to every provider.

Usage: emulator.py PORT   (prints "ready" on stdout once listening)
"""

import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import contacts
import google
import maps
import microsoft
import resend
import stripe_api
from state import LOCK, STATE, reset

ROUTES = resend.ROUTES + google.ROUTES + microsoft.ROUTES + maps.ROUTES + stripe_api.ROUTES + contacts.ROUTES
GET_ROUTES = resend.GET_ROUTES + google.GET_ROUTES + microsoft.GET_ROUTES + maps.GET_ROUTES + contacts.GET_ROUTES
METHOD_ROUTES = google.METHOD_ROUTES


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

    def do_PUT(self):
        self.method_route("PUT")

    def do_PATCH(self):
        self.method_route("PATCH")

    def do_DELETE(self):
        self.method_route("DELETE")

    def method_route(self, method):
        """PUT, PATCH, DELETE (the Calendar API's), recorded and faulted like the others."""
        body = self.read_body()
        path, _, qs = self.path.partition("?")
        headers = {k.lower(): v for k, v in self.headers.items()}
        record = {"method": method, "path": path, "query": {k: v[0] for k, v in parse_qs(qs).items()},
                  "headers": headers, "body": body, "replayed": False, "at": time.time()}
        with LOCK:
            STATE["requests"].append(record)
            fault = next((STATE["faults"].pop(i) for i, f in enumerate(STATE["faults"]) if f.get("path", path) == path), None)
        if fault and fault.get("status"):
            result = (fault["status"], {"error": {"code": fault["status"], "message": "Injected fault.",
                                                  "errors": [{"reason": fault.get("reason", "backendError")}]}})
        else:
            route = next((fn for matches, fn in METHOD_ROUTES if matches(path)), None)
            result = route(method, record["query"], headers, record, path) if route else (404, {"error": "not found"})
        record["response"] = result[1]
        if fault and fault.get("drop_after"):
            self.close_connection = True
            self.connection.shutdown(2)
            return
        return self.reply(result[0], result[1])

    def do_GET(self):
        if self.path == "/_emulator/requests":
            with LOCK:
                return self.reply(200, STATE["requests"])
        path, _, qs = self.path.partition("?")
        query = parse_qs(qs, keep_blank_values=True)
        headers = {k.lower(): v for k, v in self.headers.items()}
        record = {"method": "GET", "path": path, "query": {k: v[0] for k, v in query.items()}, "headers": headers,
                  "body": None, "replayed": False, "at": time.time()}
        with LOCK:
            STATE["requests"].append(record)
            fault = None
            for i, f in enumerate(STATE["faults"]):
                if f.get("path", path) == path:
                    fault = STATE["faults"].pop(i)
                    break
        if fault and fault.get("delay_ms"):
            time.sleep(fault["delay_ms"] / 1000)
        if fault and fault.get("status"):
            result = (fault["status"], {"error": "injected", "error_description": "Injected fault."})
        else:
            route = next((fn for matches, fn in GET_ROUTES if matches(path)), None)
            result = (route(query, headers, record, path) if route
                      else resend.resend_error(404, "not_found", "The requested endpoint does not exist."))
        record["response"] = result[1]
        return self.reply(result[0], result[1], headers=result[2] if len(result) > 2 else None)

    def do_POST(self):
        body = self.read_body()
        if self.path == "/_emulator/reset":
            reset()
            return self.reply(200, {"ok": True})
        if self.path == "/_emulator/oauth":
            with LOCK:
                if "app" in body:
                    STATE["app"] = dict(body["app"] or {})
                STATE["refresh"].update(body.get("refresh_tokens") or {})
                for token, provider in (body.get("access_tokens") or {}).items():
                    STATE["access"][token] = (provider, None)
                STATE["revoked"].update(body.get("revoke") or [])
                # whose tokens they are ({"TOKEN": ADDRESS}): userinfo, Graph /me, address books
                STATE.setdefault("owners", {}).update(body.get("owners") or {})
            return self.reply(200, {"ok": True})
        if self.path == "/_emulator/rate_limit":
            with LOCK:
                STATE.update(rate=int(body.get("per_second", 0)), recent=[])
            return self.reply(200, {"ok": True})
        if self.path == "/_emulator/stripe":
            return self.reply(*stripe_api.configure(body or {}))
        if self.path == "/_emulator/contacts":
            return self.reply(*contacts.configure(body or {}))
        if self.path == "/_emulator/maps":
            return self.reply(*maps.configure(body or {}))
        if self.path == "/_emulator/calendar":
            return self.reply(*google.seed_events(body or {}))
        if self.path == "/_emulator/faults":
            with LOCK:
                for f in body if isinstance(body, list) else [body]:
                    STATE["faults"].extend([f] * int(f.get("count", 1)))
            return self.reply(200, {"ok": True})

        headers = {k.lower(): v for k, v in self.headers.items()}
        path, _, qs = self.path.partition("?")
        record = {"method": "POST", "path": path, "query": {k: v[0] for k, v in parse_qs(qs).items()},
                  "headers": headers, "body": body, "replayed": False, "at": time.time()}
        with LOCK:
            STATE["requests"].append(record)
            fault = None
            for i, f in enumerate(STATE["faults"]):
                if f.get("path", path) == path:
                    fault = STATE["faults"].pop(i)
                    break

        # Resend: authentication, then the idempotency key (replay, conflict), before anything
        # else; the key stays "in progress" until the answer, injected delays included.
        key = None
        if self.path in resend.IDEMPOTENT_PATHS:
            if not headers.get("authorization", "").startswith("Bearer " + resend.API_KEY_PREFIX):
                return self.reply(*resend.resend_error(401, "missing_api_key", "Missing API key in the authorization header."))
            key = headers.get("idempotency-key")
        payload = json.dumps(body, sort_keys=True)
        if key:
            with LOCK:
                seen = STATE["idempotency"].get((self.path, key))
                busy = seen is None and (self.path, key) in STATE["in_flight"]
                if seen is None and not busy:
                    STATE["in_flight"].add((self.path, key))
            if busy:
                result = resend.resend_error(409, "concurrent_idempotent_requests",
                                      "Same idempotency key used while original request is still in progress.")
                record["response"] = result[1]
                return self.reply(*result)
            if seen is not None:
                if seen[0] != payload:
                    result = resend.resend_error(409, "invalid_idempotent_request",
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
                result = resend.resend_error(fault["status"], name, "Injected fault.")
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
            result = resend.resend_error(429, "rate_limit_exceeded", "Too many requests. You can only make %d requests per second." % STATE["rate"])
            record["response"] = result[1]
            return result[0], result[1], {"Retry-After": "1"}
        route = next((fn for matches, fn in ROUTES if matches(record["path"])), None)
        if route is None:
            result = resend.resend_error(404, "not_found", "The requested endpoint does not exist.")
        else:
            result = route(body, headers, record)
        record["response"] = result[1]
        if fault and fault.get("drop_after"):
            # done, and the answer lost on the way back (a crash between the provider's 200 and us)
            self.close_connection = True
            self.connection.shutdown(2)
            return None
        return result

def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 18025
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
