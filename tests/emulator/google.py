"""Google: Gmail's users.messages.send ({"raw": base64url RFC 5322, "threadId"}) and the
token endpoint POST /token. Error body {"error": {"code", "message", "errors", "status"}}."""
import base64
import email
import email.policy
import secrets

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


def form_of(body):
    return body if isinstance(body, dict) else {}


ROUTES = [
    (lambda path: path == "/token", lambda body, headers, record: issue_token(form_of(body), "google")),
    (lambda path: path == "/revoke", lambda body, headers, record: revoke(form_of(body))),
    (lambda path: path == "/gmail/v1/users/me/messages/send", gmail_send),
]
GET_ROUTES = [
    (lambda path: path == "/o/oauth2/v2/auth", lambda query, headers, record, path: authorize("google", query)),
    (lambda path: path == "/v1/userinfo", lambda query, headers, record, path: userinfo(query, headers, record)),
]
