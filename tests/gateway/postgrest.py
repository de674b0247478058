#!/usr/bin/env python3
"""A small stand-in for Supabase's API gateway and PostgREST, for tests (PostgREST is not
installable on these machines). It reproduces only what the extension's HTTP entry points rely
on, as PostgREST's documentation describes it (https://docs.postgrest.org, v12):

  * Supabase's gateway: every request carries an `apikey` header or query parameter (else 401).
  * Authentication: `Authorization: Bearer <JWT>`, HS256 with the project's JWT secret; a bad
    signature, an expired `exp` or a malformed token is 401 with PostgREST's PGRST301/PGRST303
    body. The `role` claim is the role switched to (`SET LOCAL ROLE`); no token means the anon
    role. The claims go into `request.jwt.claims`, the request's headers (lower-cased) into
    `request.headers`, method and path into `request.method` / `request.path`: all
    transaction-local, one transaction per request.
  * RPC: `POST /rest/v1/rpc/<function>` calls schema `crm`'s function. A function with a single
    unnamed parameter of type json or jsonb gets the body as is (Content-Type
    application/json); of type text, the raw body (Content-Type text/plain); another content
    type finds no function (404); otherwise the body's JSON object supplies named arguments.
  * The result: the function's value as the JSON body (`null` for NULL), Content-Type
    application/json; `response.status` set by the function replaces the status, and
    `response.headers` (a JSON array of one-key objects) adds headers.
  * Errors: `{"code", "message", "details", "hint"}` with the HTTP status of PostgREST's
    SQLSTATE table (08* 503, 09* 500, 0L*/0P* 403, 23503/23505 409, 25006 405, 25* 500,
    28* 403, 2D*/38*/39*/3B*/40* 500, 53* 503, 54*/55*/57*/58* 500, F0*/HV*/XX* 500,
    P0001 400, other P0* 500, 42883/42P01 404, 42P17 500, 42501 401 for anon else 403,
    anything else 400).

Not reproduced: table endpoints, content negotiation beyond JSON, prefer headers, OpenAPI.

  postgrest.py serve PORT --dsn DSN --jwt-secret SECRET     (prints "ready")
  postgrest.py mint SECRET CLAIMS_JSON                       (prints an HS256 JWT)
"""
import base64
import hashlib
import hmac
import json
import sys
import threading
import time
from urllib.parse import parse_qs
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def mint(secret, claims):
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims).encode())
    sig = b64url(hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{sig}"


def verify(secret, token):
    """The claims, or an error message (PostgREST's wording)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None, "Expected 3 parts in JWT; got %d" % len(parts)
    try:
        header = json.loads(unb64url(parts[0]))
        claims = json.loads(unb64url(parts[1]))
        sig = unb64url(parts[2])
    except ValueError:
        return None, "JWSError JWSInvalidSignature"
    if header.get("alg") != "HS256":
        return None, "JWSError (JWSAlgNotAllowed)"
    good = hmac.new(secret.encode(), f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(good, sig):
        return None, "JWSError JWSInvalidSignature"
    if not isinstance(claims, dict):
        return None, "JWT claims are not an object"
    if "exp" in claims and isinstance(claims["exp"], (int, float)) and claims["exp"] < time.time():
        return None, "JWT expired"
    return claims, None


def http_status(code, role):
    if code == "42501":
        return 401 if role == "anon" else 403
    exact = {"23503": 409, "23505": 409, "25006": 405, "P0001": 400, "42883": 404, "42P01": 404, "42P17": 500}
    if code in exact:
        return exact[code]
    for prefix, status in (("08", 503), ("09", 500), ("0L", 403), ("0P", 403), ("25", 500), ("28", 403),
                           ("2D", 500), ("38", 500), ("39", 500), ("3B", 500), ("40", 500), ("53", 503),
                           ("54", 500), ("55", 500), ("57", 500), ("58", 500), ("F0", 500), ("HV", 500),
                           ("P0", 500), ("XX", 500)):
        if code.startswith(prefix):
            return status
    return 400


class Gateway(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    local = threading.local()

    def log_message(self, *args):
        pass

    def send(self, status, body, headers=()):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def conn(self):
        c = getattr(self.local, "conn", None)
        if c is None or c.closed:
            c = self.local.conn = psycopg.connect(self.server.dsn, autocommit=False)
        return c

    def do_GET(self):
        # MCP's optional SSE stream (GET) is not offered: 405, as the transport allows.
        self.send(405, {"code": "PGRST117", "message": "Unsupported HTTP method: GET", "details": None, "hint": None})

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        query = parse_qs(self.path.partition("?")[2])
        if "apikey" not in headers and "apikey" not in query:
            return self.send(401, {"message": "No API key found in request", "hint": "No `apikey` request header or url param was found."})
        role, claims = "anon", {"role": "anon"}
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            claims, err = verify(self.server.secret, auth[7:].strip())
            if err:
                code = "PGRST303" if err == "JWT expired" else "PGRST301"
                return self.send(401, {"code": code, "message": err, "details": None, "hint": None},
                                 [("WWW-Authenticate", 'Bearer error="invalid_token"')])
            role = claims.get("role", "anon")
        path = self.path.split("?")[0]
        if not path.startswith("/rest/v1/rpc/"):
            return self.send(404, {"code": "PGRST125", "message": "Invalid path specified in request URL", "details": None, "hint": None})
        fn = path[len("/rest/v1/rpc/"):]
        conn = self.conn()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT p.oid, p.pronargs, p.proargnames, format_type(p.proargtypes[0], NULL) "
                            "FROM pg_proc p WHERE p.pronamespace = 'crm'::regnamespace AND p.proname = %s", (fn,))
                found = cur.fetchall()
                if not found:
                    conn.rollback()
                    return self.send(404, {"code": "PGRST202", "message": f"Could not find the function crm.{fn} in the schema cache",
                                           "details": None, "hint": None})
                cur.execute("SELECT set_config('role', %s, true), set_config('request.jwt.claims', %s, true), "
                            "set_config('request.headers', %s, true), set_config('request.method', 'POST', true), "
                            "set_config('request.path', %s, true)",
                            (role, json.dumps(claims), json.dumps(headers), path))
                unnamed = [f for f in found if f[1] == 1 and not (f[2] or [None])[0]]
                ctype = headers.get("content-type", "application/json").split(";")[0].strip().lower()
                if unnamed:
                    argtype = unnamed[0][3]
                    wanted = "text/plain" if argtype == "text" else "application/json"
                    if argtype in ("json", "jsonb", "text") and ctype != wanted:
                        # PostgREST looks for a function taking this content type's parameter
                        conn.rollback()
                        return self.send(404, {"code": "PGRST202", "message": f"Could not find the function crm.{fn} in the schema cache",
                                               "details": f"a single unnamed {argtype} parameter takes Content-Type {wanted}", "hint": None})
                    if argtype in ("json", "jsonb"):
                        cur.execute(f"SELECT crm.{fn}(%s::{argtype})::text", (raw.decode("utf-8", "replace") or None,))
                    else:
                        cur.execute(f"SELECT to_json(crm.{fn}(%s::{argtype}))::text", (raw.decode("utf-8", "replace"),))
                else:
                    args = json.loads(raw or b"{}") if ctype == "application/json" else {}
                    if not isinstance(args, dict):
                        conn.rollback()
                        return self.send(400, {"code": "PGRST102", "message": "Invalid body", "details": None, "hint": None})
                    names = ", ".join(f"{k} => %s" for k in args)
                    cur.execute(f"SELECT to_json(crm.{fn}({names}))::text",
                                [json.dumps(v) if isinstance(v, (dict, list)) else v for v in args.values()])
                value = cur.fetchone()[0]
                cur.execute("SELECT current_setting('response.status', true), current_setting('response.headers', true)")
                status_text, extra = cur.fetchone()
            conn.commit()
        except psycopg.Error as e:
            conn.rollback()
            code = e.sqlstate or "XX000"
            diag = e.diag
            return self.send(http_status(code, role), {"code": code, "message": diag.message_primary,
                                                        "details": diag.message_detail, "hint": diag.message_hint})
        status = int(status_text) if status_text else 200
        more = []
        if extra:
            for h in json.loads(extra):
                more.extend(h.items())
        data = None if value is None else json.loads(value)
        if value is None:
            data = None
        self.send_response(status)
        body = json.dumps(data).encode()
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for k, v in more:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)


def main():
    if sys.argv[1] == "mint":
        print(mint(sys.argv[2], json.loads(sys.argv[3])))
        return
    port = int(sys.argv[2])
    opts = dict(zip(sys.argv[3::2], sys.argv[4::2]))
    server = ThreadingHTTPServer(("127.0.0.1", port), Gateway)
    server.daemon_threads = True
    server.dsn = opts["--dsn"]
    server.secret = opts["--jwt-secret"]
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
