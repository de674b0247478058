"""Address books and drafts: Google's People API (people/me/connections, otherContacts) and
Microsoft Graph's contact delta query, each with its sync tokens, pagination, deletions and
expiry; Gmail's users.drafts.create and Graph's POST /me/messages (a draft).

People API (https://developers.google.com/people/api/rest/v1/people.connections/list):
  GET /v1/people/me/connections?personFields=...&pageSize=1..1000&requestSyncToken=true
      [&syncToken=T][&pageToken=P]
  GET /v1/otherContacts?readMask=...        (the same paging; readMask limited to names,
                                             emailAddresses, phoneNumbers, metadata, photos)
  A full listing lists the live people (pages of pageSize; default 100); the last page
  carries nextSyncToken when requestSyncToken=true. With syncToken: the people changed since
  it, deleted ones as {resourceName, etag, metadata: {deleted: true}}. A page token is only
  good with the same parameters as the first request (else 400 INVALID_ARGUMENT). An expired
  token: 400 FAILED_PRECONDITION whose ErrorInfo reason is EXPIRED_SYNC_TOKEN.
Graph (https://learn.microsoft.com/graph/api/contact-delta):
  GET /v1.0/me/contacts/delta[?$skiptoken=..|?$deltatoken=..] with Prefer: odata.maxpagesize=N
  (default 10; Preference-Applied echoed). Pages link @odata.nextLink; the last links
  @odata.deltaLink (absolute URLs on the Host the request named). Removed contacts come as
  {"@odata.type", "id", "@removed": {"reason": "deleted"}}. An expired delta token: 410 Gone.
Drafts:
  POST /gmail/v1/users/me/drafts {"message": {"raw", "threadId"}} -> {"id", "message": {"id",
       "threadId", "labelIds": ["DRAFT"]}} (the RFC 5322 text parsed into the record's "mime")
  POST /v1.0/me/messages {message} -> 201 the message with id, conversationId, webLink, isDraft

Control: POST /_emulator/contacts
  {"provider": "google"|"microsoft", "owner": ADDRESS, "feed": "connections"|"other",
   "upsert": [person in the provider's shape], "delete": [id, ...],
   "seed": {"count": N, "prefix": "p", "start": 0},        (generated people, for benchmarks)
   "touch": {"count": N, "start": 0, "prefix": "p"},       (change N seeded people)
   "expire_tokens": true}                                   (every token issued so far expires)
  Books are per provider, owner (the access token's user) and feed.
"""
import base64
import json
import secrets
import time

from google import google_error, mime_summary
from microsoft import graph_error
from oauth import bearer_ok, owner_of
from state import LOCK, STATE

PEOPLE_READ_MASK = {"names", "emailAddresses", "phoneNumbers", "metadata", "photos"}
PERSON_FIELDS = {"addresses", "ageRanges", "biographies", "birthdays", "calendarUrls", "clientData",
                 "coverPhotos", "emailAddresses", "events", "externalIds", "genders", "imClients",
                 "interests", "locales", "locations", "memberships", "metadata", "miscKeywords", "names",
                 "nicknames", "occupations", "organizations", "phoneNumbers", "photos", "relations",
                 "sipAddresses", "skills", "urls", "userDefined"}


def _book(provider, owner, feed):
    books = STATE.setdefault("books", {})
    return books.setdefault((provider, owner, feed), {"people": {}, "seq": 0, "epoch": 0})


def _put(book, pid, person, deleted=False):
    book["seq"] += 1
    STATE["book_seq"] = STATE.get("book_seq", 0) + 1
    book["people"][pid] = {"person": person, "seq": book["seq"], "deleted": deleted}


def _google_person(i, prefix, version=1):
    return {"resourceName": "people/%s%06d" % (prefix, i), "etag": "%%E%d" % version,
            "names": [{"metadata": {"primary": True}, "givenName": "Person%d" % i, "familyName": prefix.upper() + "v%d" % version}],
            "emailAddresses": [{"metadata": {"primary": True}, "value": "%s%06d@book.example" % (prefix, i)}],
            "phoneNumbers": [{"value": "+1 317 %03d %04d" % (200 + i // 10000, i % 10000), "canonicalForm": "+1317%03d%04d" % (200 + i // 10000, i % 10000)}]}


def _graph_contact(i, prefix, version=1):
    return {"id": "%s%06d" % (prefix, i), "changeKey": "CK%d" % version, "givenName": "Person%d" % i,
            "surname": prefix.upper() + "v%d" % version,
            "emailAddresses": [{"name": "P", "address": "%s%06d@book.example" % (prefix, i)}],
            "businessPhones": ["+1 317 %03d %04d" % (200 + i // 10000, i % 10000)], "homePhones": []}


def configure(body):
    provider = body.get("provider", "google")
    feed = body.get("feed", "connections" if provider == "google" else "contacts")
    with LOCK:
        book = _book(provider, body.get("owner", "user@example.com"), feed)
        for p in body.get("upsert") or []:
            pid = p.get("resourceName") if provider == "google" else p.get("id")
            _put(book, pid, dict(p))
        for pid in body.get("delete") or []:
            if pid in book["people"]:
                _put(book, pid, book["people"][pid]["person"], deleted=True)
        seed = body.get("seed")
        if seed:
            make = _google_person if provider == "google" else _graph_contact
            for i in range(int(seed.get("start", 0)), int(seed.get("start", 0)) + int(seed["count"])):
                p = make(i, seed.get("prefix", "p"))
                _put(book, p.get("resourceName") or p.get("id"), p)
        touch = body.get("touch")
        if touch:
            make = _google_person if provider == "google" else _graph_contact
            for i in range(int(touch.get("start", 0)), int(touch.get("start", 0)) + int(touch["count"])):
                p = make(i, touch.get("prefix", "p"), version=2)
                _put(book, p.get("resourceName") or p.get("id"), p)
        if body.get("expire_tokens"):
            book["epoch"] += 1
        return 200, {"people": sum(1 for e in book["people"].values() if not e["deleted"]), "seq": book["seq"]}


def _encode(obj):
    return base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode(token):
    try:
        return json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except ValueError:
        return None


def _listing(book, since, snap):
    """(id, entry) of a listing: everyone live (since None), or everyone changed since."""
    items = [(pid, e) for pid, e in book["people"].items() if e["seq"] <= snap]
    if since is None:
        items = [(pid, e) for pid, e in items if not e["deleted"]]
    else:
        items = [(pid, e) for pid, e in items if e["seq"] > since]
    items.sort(key=lambda x: x[1]["seq"])
    return items


def people_list(feed, query, headers):
    """people.connections.list and otherContacts.list."""
    first = lambda k, d=None: (query.get(k) or [d])[0]
    owner = owner_of(headers, "google")
    if owner is None:
        return google_error(401, "Request had invalid authentication credentials.", "authError", "UNAUTHENTICATED")
    mask_name = "personFields" if feed == "connections" else "readMask"
    mask = first(mask_name)
    if not mask:
        return google_error(400, "%s mask is required. Please specify one or more valid paths." % mask_name,
                            "invalidArgument", "INVALID_ARGUMENT")
    allowed = PERSON_FIELDS if feed == "connections" else PEOPLE_READ_MASK
    bad = [f for f in mask.split(",") if f not in allowed]
    if bad:
        return google_error(400, "Invalid %s path: \"%s\"." % (mask_name, bad[0]), "invalidArgument", "INVALID_ARGUMENT")
    try:
        size = int(first("pageSize", "100") or 100)
    except ValueError:
        size = -1
    if not 0 <= size <= 1000:
        return google_error(400, "pageSize must be between 1 and 1000.", "invalidArgument", "INVALID_ARGUMENT")
    size = size or 100
    sync = first("syncToken")
    with LOCK:
        book = _book("google", owner, feed)
        with_token = first("requestSyncToken") == "true"
        since = None
        if sync is not None:
            t = _decode(sync)
            if not t or t.get("epoch") != book["epoch"]:
                return 400, {"error": {"code": 400, "message": "Sync token is expired. Clear local cache and retry call without the sync token.",
                                       "status": "FAILED_PRECONDITION",
                                       "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                                    "reason": "EXPIRED_SYNC_TOKEN", "domain": "people.googleapis.com"}]}}
            since = t["seq"]
        params = [mask, size, sync or "", with_token]
        page = first("pageToken")
        if page:
            p = _decode(page)
            if not p or p.get("params") != params:
                return google_error(400, "Request parameters must match the first request of a paginated listing.",
                                    "invalidArgument", "INVALID_ARGUMENT")
            offset, snap = p["offset"], p["snap"]
        else:
            offset, snap = 0, book["seq"]
        items = _listing(book, since, snap)
        chunk = items[offset:offset + size]
        out = []
        for pid, e in chunk:
            if e["deleted"]:
                out.append({"resourceName": pid, "etag": "%deleted", "metadata": {"deleted": True, "objectType": "PERSON"}})
            else:
                person = dict(e["person"])
                person.setdefault("metadata", {"sources": [{"type": "CONTACT", "id": pid.split("/")[-1]}], "objectType": "PERSON"})
                out.append(person)
        answer = {("connections" if feed == "connections" else "otherContacts"): out}
        if feed == "connections":
            answer["totalItems"] = answer["totalPeople"] = len(items)
        else:
            answer["totalSize"] = len(items)
        if offset + size < len(items):
            answer["nextPageToken"] = _encode({"offset": offset + size, "snap": snap, "params": params})
        elif with_token:
            answer["nextSyncToken"] = _encode({"seq": snap, "epoch": book["epoch"]})
    return 200, answer


def graph_delta(query, headers):
    """GET /v1.0/me/contacts/delta."""
    first = lambda k, d=None: (query.get(k) or [d])[0]
    owner = owner_of(headers, "microsoft")
    if owner is None:
        return graph_error(401, "InvalidAuthenticationToken", "Access token is empty.")
    prefer = headers.get("prefer", "")
    size = 10
    for part in prefer.split(","):
        k, _, v = part.strip().partition("=")
        if k == "odata.maxpagesize" and v.isdigit():
            size = max(1, min(int(v), 1000))
    base = "http://" + headers.get("host", "127.0.0.1")
    with LOCK:
        book = _book("microsoft", owner, "contacts")
        since = None
        delta, skip = first("$deltatoken"), first("$skiptoken")
        if delta is not None:
            t = _decode(delta)
            if not t or t.get("epoch") != book["epoch"]:
                return graph_error(410, "SyncStateNotFound", "The sync state generation is not found. Please resync.")
            since = t["seq"]
            offset, snap = 0, book["seq"]
        elif skip is not None:
            t = _decode(skip)
            if not t:
                return graph_error(400, "BadRequest", "Invalid skip token.")
            if t.get("epoch") != book["epoch"]:
                return graph_error(410, "SyncStateNotFound", "The sync state generation is not found. Please resync.")
            since, offset, snap = t["since"], t["offset"], t["snap"]
        else:
            offset, snap = 0, book["seq"]
        items = _listing(book, since, snap)
        chunk = items[offset:offset + size]
        out = []
        for pid, e in chunk:
            if e["deleted"]:
                out.append({"@odata.type": "#microsoft.graph.contact", "id": pid, "@removed": {"reason": "deleted"}})
            else:
                out.append(dict(e["person"], **{"@odata.etag": 'W/"%s"' % e["person"].get("changeKey", "")}))
        answer = {"@odata.context": base + "/v1.0/$metadata#Collection(contact)", "value": out}
        if offset + size < len(items):
            answer["@odata.nextLink"] = base + "/v1.0/me/contacts/delta?$skiptoken=" + _encode(
                {"since": since, "offset": offset + size, "snap": snap, "epoch": book["epoch"]})
        else:
            answer["@odata.deltaLink"] = base + "/v1.0/me/contacts/delta?$deltatoken=" + _encode(
                {"seq": snap, "epoch": book["epoch"]})
    return 200, answer, {"Preference-Applied": "odata.maxpagesize=%d" % size}


def gmail_draft(body, headers, record):
    if not bearer_ok(headers, "google"):
        return google_error(401, "Request had invalid authentication credentials.", "authError", "UNAUTHENTICATED")
    msg = body.get("message") if isinstance(body, dict) else None
    if not isinstance(msg, dict) or not isinstance(msg.get("raw"), str):
        return google_error(400, "Missing draft message", "invalidArgument", "INVALID_ARGUMENT")
    raw = msg["raw"]
    if "+" in raw or "/" in raw:
        return google_error(400, "Invalid value for ByteString: not base64url", "invalidArgument", "INVALID_ARGUMENT")
    try:
        record["mime"] = mime_summary(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except ValueError:
        return google_error(400, "Invalid value for ByteString", "invalidArgument", "INVALID_ARGUMENT")
    mid = secrets.token_hex(8)
    return 200, {"id": "r-%d" % secrets.randbelow(10**18), "message": {"id": mid, "threadId": msg.get("threadId") or mid,
                                                                      "labelIds": ["DRAFT"]}}


def graph_draft(body, headers):
    if not bearer_ok(headers, "microsoft"):
        return graph_error(401, "InvalidAuthenticationToken", "Access token validation failure.")
    if not isinstance(body, dict) or "message" in body:
        return graph_error(400, "ErrorInvalidRequest", "Cannot read the request body: a message resource is expected.")
    for h in body.get("internetMessageHeaders") or []:
        if not h.get("name", "").lower().startswith("x-"):
            return graph_error(400, "InvalidInternetMessageHeader",
                               "The internet message header name '%s' should start with 'x-' or 'X-'." % h.get("name"))
    mid = "AAMk" + secrets.token_hex(12)
    return 201, dict(body, id=mid, conversationId="AAQk" + secrets.token_hex(8), isDraft=True,
                     createdDateTime=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                     webLink="https://outlook.office365.com/owa/?ItemID=%s&exvsurl=1&viewmodel=ReadMessageItem" % mid)


ROUTES = [
    (lambda path: path == "/gmail/v1/users/me/drafts", gmail_draft),
    (lambda path: path == "/v1.0/me/messages", lambda body, headers, record: graph_draft(body, headers)),
]
GET_ROUTES = [
    (lambda path: path == "/v1/people/me/connections",
     lambda query, headers, record, path: people_list("connections", query, headers)),
    (lambda path: path == "/v1/otherContacts",
     lambda query, headers, record, path: people_list("other", query, headers)),
    (lambda path: path == "/v1.0/me/contacts/delta",
     lambda query, headers, record, path: graph_delta(query, headers)),
]
