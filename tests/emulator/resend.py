"""Resend: POST /emails and POST /emails/batch (https://resend.com/docs/api-reference).
Error body {"statusCode", "name", "message"}; API keys start with re_. Idempotency-Key replay
and conflicts are handled by the server (emulator.py), since they wrap any answer."""
import uuid

API_KEY_PREFIX = "re_"
IDEMPOTENT_PATHS = ("/emails", "/emails/batch")


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


def send_one(body, headers, record):
    problem = validate_email(body)
    return resend_error(422, "validation_error", problem) if problem else (200, {"id": str(uuid.uuid4())})


def send_batch(body, headers, record):
    if not isinstance(body, list) or not 1 <= len(body) <= 100:
        return resend_error(422, "validation_error", "The batch must hold 1 to 100 emails.")
    problems = [p for p in (validate_email(e) for e in body) if p]
    if problems:
        return resend_error(422, "validation_error", problems[0])
    return 200, {"data": [{"id": str(uuid.uuid4())} for _ in body]}


def domains(query, headers, record):
    """GET /domains: the account's sending domains (POST /_emulator/oauth {"app":
    {"resend_domains": [{"name", "status"}]}} sets them; default: none)."""
    if not headers.get("authorization", "").startswith("Bearer " + API_KEY_PREFIX):
        return resend_error(401, "missing_api_key", "Missing API key in the authorization header.")
    from state import LOCK, STATE
    with LOCK:
        listed = list((STATE.get("app") or {}).get("resend_domains") or [])
    return 200, {"data": [{"id": str(uuid.uuid5(uuid.NAMESPACE_DNS, d["name"])), "name": d["name"],
                           "status": d.get("status", "verified"), "region": "us-east-1",
                           "created_at": "2026-01-01T00:00:00.000Z"} for d in listed]}


ROUTES = [(lambda path: path == "/emails", send_one), (lambda path: path == "/emails/batch", send_batch)]
GET_ROUTES = [(lambda path: path == "/domains", lambda query, headers, record, path: domains(query, headers, record))]
