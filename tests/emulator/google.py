"""Google: Gmail's users.messages.send ({"raw": base64url RFC 5322, "threadId"}) and the
token endpoint POST /token. Error body {"error": {"code", "message", "errors", "status"}}."""
import base64
import email
import email.policy
import re
import secrets
import time
from urllib.parse import unquote

from oauth import authorize, bearer_ok, issue_token, owner_of, revoke


def google_error(status, message, reason, state):
    return status, {"error": {"code": status, "message": message,
                              "errors": [{"message": message, "domain": "global", "reason": reason}],
                              "status": state}}


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


def userinfo(query, headers, record):
    """OpenID Connect userinfo (GET /v1/userinfo)."""
    email = owner_of(headers, "google")
    if email is None:
        return 401, {"error": "invalid_request", "error_description": "Invalid Credentials"}
    return 200, {"sub": str(abs(hash(email)) % 10**21), "email": email, "email_verified": True}


# Calendar API v3 (https://developers.google.com/calendar/api/v3/reference/events): events
# per calendar, kept in STATE["calendar"][calendar_id][event_id]; a deleted event stays as
# status "cancelled" (a second delete or a get of it: 410 Gone, as Google answers).
EVENTS_PATH = re.compile(r"^/calendar/v3/calendars/([^/]+)/events(?:/([^/]+))?$")
BASE32HEX = re.compile(r"^[a-v0-9]{5,1024}$")


def calendar_error(status, reason, message):
    state = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
             409: "ALREADY_EXISTS", 410: "FAILED_PRECONDITION"}.get(status, "UNKNOWN")
    return google_error(status, message, reason, state)


def _seq():
    from state import STATE
    STATE["calendar_seq"] = STATE.get("calendar_seq", 0) + 1
    return STATE["calendar_seq"]


def _public(ev):
    return {k: v for k, v in ev.items() if not k.startswith("_")}


def list_events(cal, query):
    """events.list: a full listing (pages of maxResults, the last with nextSyncToken), or the
    changes since a syncToken (deleted events as status "cancelled"); 410 fullSyncRequired for
    a token the emulator was told to expire."""
    from state import LOCK, STATE
    first = lambda k, d=None: (query.get(k) or [d])[0]
    size = max(1, min(int(first("maxResults", "250")), 2500))
    with LOCK:
        # POST /_emulator/oauth {"app": {"calendar_page_size": N}}: smaller pages, for pagination tests
        size = min(size, int((STATE.get("app") or {}).get("calendar_page_size") or size))
    offset = int(first("pageToken", "0") or 0)
    token = first("syncToken")
    with LOCK:
        app = STATE.get("app") or {}
        events = sorted(STATE.setdefault("calendar", {}).setdefault(cal, {}).values(), key=lambda e: e["_seq"])
        now_seq = STATE.get("calendar_seq", 0)
    if token is not None:
        if app.get("calendar_expire_sync_tokens") or not token.startswith("seq:"):
            return calendar_error(410, "fullSyncRequired", "Sync token is no longer valid, a full sync is required.")
        since = int(token[4:])
        picked = [e for e in events if e["_seq"] > since]
    else:
        picked = [e for e in events if e.get("status") != "cancelled" or first("showDeleted") == "true"]
    page = picked[offset:offset + size]
    answer = {"kind": "calendar#events", "summary": cal, "timeZone": "UTC", "items": [_public(e) for e in page]}
    if offset + size < len(picked):
        answer["nextPageToken"] = str(offset + size)
    else:
        answer["nextSyncToken"] = "seq:%d" % now_seq
    return 200, answer


WATCH_PATH = re.compile(r"^/calendar/v3/calendars/([^/]+)/events/watch$")


def watch(path, body, headers):
    """events.watch: a push channel (type web_hook) on a calendar's events."""
    from state import LOCK, STATE
    if not bearer_ok(headers, "google"):
        return calendar_error(401, "authError", "Invalid Credentials")
    if not isinstance(body, dict) or body.get("type") != "web_hook" or not str(body.get("address", "")).startswith("https://"):
        return calendar_error(400, "push.webhookUrlNotHttps", "WebHook callback must be HTTPS: " + str((body or {}).get("address")))
    cal = unquote(WATCH_PATH.match(path).group(1))
    resource = "res-" + secrets.token_hex(8)
    expiration = str(int((time.time() + int((body.get("params") or {}).get("ttl", 604800))) * 1000))
    with LOCK:
        STATE.setdefault("channels", {})[body["id"]] = {"calendar": cal, "token": body.get("token"), "resourceId": resource,
                                                       "address": body["address"], "expiration": expiration}
    return 200, {"kind": "api#channel", "id": body["id"], "resourceId": resource,
                 "resourceUri": "https://www.googleapis.com/calendar/v3/calendars/%s/events?alt=json" % cal,
                 "token": body.get("token"), "expiration": expiration}


def seed_events(body):
    """POST /_emulator/calendar {"calendar", "count"}: someone else's events, an hour each, for
    benchmarks of the inbound sync."""
    from state import LOCK, STATE
    cal, count = body.get("calendar", "primary"), int(body.get("count", 0))
    base = int(time.mktime((2027, 1, 1, 8, 0, 0, 0, 0, 0)))
    with LOCK:
        events = STATE.setdefault("calendar", {}).setdefault(cal, {})
        for i in range(count):
            eid = "seed%06d" % i
            start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(base + i * 3600))
            end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(base + i * 3600 + 3000))
            events[eid] = {"id": eid, "kind": "calendar#event", "status": "confirmed", "summary": "Busy",
                           "etag": '"1"', "updated": "2026-11-01T00:00:00.000Z", "start": {"dateTime": start},
                           "end": {"dateTime": end}, "_seq": _seq()}
    return 200, {"seeded": count}


def stop_channel(body, headers):
    """channels.stop {id, resourceId}: 204, or 404 for a channel it does not know."""
    from state import LOCK, STATE
    if not bearer_ok(headers, "google"):
        return calendar_error(401, "authError", "Invalid Credentials")
    with LOCK:
        ch = STATE.setdefault("channels", {}).get((body or {}).get("id"))
        if ch is None or ch["resourceId"] != (body or {}).get("resourceId"):
            return calendar_error(404, "notFound", "Channel '%s' not found for project" % (body or {}).get("id"))
        del STATE["channels"][body["id"]]
    return 204, None


def calendar(method, path, body, headers, query=None):
    from state import LOCK, STATE
    if not bearer_ok(headers, "google"):
        return calendar_error(401, "authError", "Invalid Credentials")
    m = EVENTS_PATH.match(path)
    cal, event_id = unquote(m.group(1)), m.group(2) and unquote(m.group(2))
    if method == "GET" and event_id is None:
        return list_events(cal, query or {})
    with LOCK:
        events = STATE.setdefault("calendar", {}).setdefault(cal, {})
        if method == "POST" and event_id is None:
            if not isinstance(body, dict) or "start" not in body or "end" not in body:
                return calendar_error(400, "required", "Missing end time.")
            new_id = body.get("id") or secrets.token_hex(13)
            if not BASE32HEX.match(new_id):
                return calendar_error(400, "invalid", "Invalid resource id value.")
            if new_id in events:
                return calendar_error(409, "duplicate", "The requested identifier already exists.")
            ev = dict(body, id=new_id, status="confirmed", etag='"%d"' % int(time.time() * 1e6), _seq=_seq(),
                      updated=time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()), kind="calendar#event",
                      htmlLink="https://www.google.com/calendar/event?eid=" + new_id)
            events[new_id] = ev
            return 200, _public(ev)
        ev = events.get(event_id)
        if ev is None:
            return calendar_error(404, "notFound", "Not Found")
        if ev.get("status") == "cancelled":
            return calendar_error(410, "deleted", "Resource has been deleted")
        if method == "GET":
            return 200, _public(ev)
        if method == "DELETE":
            ev["status"] = "cancelled"
            ev["_seq"] = _seq()
            return 204, None
        if method in ("PUT", "PATCH"):
            if not isinstance(body, dict):
                return calendar_error(400, "parseError", "Parse Error")
            updated = dict(body) if method == "PUT" else dict(ev, **body)
            updated.update(id=event_id, status="confirmed", etag='"%d"' % int(time.time() * 1e6), kind="calendar#event", _seq=_seq(),
                           updated=time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()), htmlLink=ev["htmlLink"])
            events[event_id] = updated
            return 200, _public(updated)
    return calendar_error(400, "badRequest", "Bad Request")


def form_of(body):
    return body if isinstance(body, dict) else {}


ROUTES = [
    (lambda path: path == "/token", lambda body, headers, record: issue_token(form_of(body), "google")),
    (lambda path: path == "/revoke", lambda body, headers, record: revoke(form_of(body))),
    (lambda path: path == "/gmail/v1/users/me/messages/send", gmail_send),
    (lambda path: bool(WATCH_PATH.match(path)), lambda body, headers, record: watch(record["path"], body, headers)),
    (lambda path: path == "/calendar/v3/channels/stop", lambda body, headers, record: stop_channel(body, headers)),
    (lambda path: bool(EVENTS_PATH.match(path)), lambda body, headers, record: calendar("POST", record["path"], body, headers)),
]
# PUT, PATCH and DELETE: the Calendar API's.
METHOD_ROUTES = [
    (lambda path: bool(EVENTS_PATH.match(path)),
     lambda method, query, headers, record, path: calendar(method, path, record["body"], headers)),
]
GET_ROUTES = [
    (lambda path: path == "/o/oauth2/v2/auth", lambda query, headers, record, path: authorize("google", query)),
    (lambda path: path == "/v1/userinfo", lambda query, headers, record, path: userinfo(query, headers, record)),
    (lambda path: bool(EVENTS_PATH.match(path)), lambda query, headers, record, path: calendar("GET", path, None, headers, query)),
]
