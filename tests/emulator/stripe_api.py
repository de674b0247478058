"""Stripe: POST /v1/checkout/sessions (and /{id}/expire) and POST /v1/payment_intents (and
/{id}/cancel), as Stripe answers them.

  Form-encoded bodies in bracket notation (line_items[0][price_data][unit_amount]=…);
  Authorization: Bearer sk_test_… (else 401 authentication_error); Idempotency-Key replay (the
  same key and parameters: the first answer again, with Idempotent-Replayed: true) and 400
  idempotency_error for the same key with other parameters; validation errors as Stripe's error
  object {"error": {"type", "code", "param", "message"}} (amount below 50 cents, a missing
  success_url, an unknown currency). Errors queued by POST /_emulator/stripe
  {"errors": [{"status": 402, "type": "card_error", "code": "card_declined", "message": "…"}]}
  are answered first (429 with Retry-After for rate_limit_error).
"""
import json
import re
import secrets
import time

from state import LOCK, STATE

CURRENCIES = {"usd", "eur", "gbp", "cad", "aud", "jpy", "chf", "sek", "nok", "dkk", "mxn", "inr", "brl"}


def configure(body):
    with LOCK:
        STATE.setdefault("stripe_errors", []).extend(body.get("errors") or [])
    return 200, {"ok": True}


def error(status, kind, message, code=None, param=None, headers=None):
    e = {"type": kind, "message": message}
    if code:
        e["code"] = code
    if param:
        e["param"] = param
    return (status, {"error": e}, headers) if headers else (status, {"error": e})


def flat(body):
    """The emulator's form parse gives lists; Stripe's keys are single-valued."""
    return {k: (v[0] if isinstance(v, list) and v else v) for k, v in (body or {}).items()} if isinstance(body, dict) else {}


def nested(form):
    """a[b][0][c]=v → {"a": {"b": {"0": {"c": v}}}} (what the request described)."""
    out = {}
    for key, value in form.items():
        parts = key.replace("]", "").split("[")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


def amount_error(value, param):
    try:
        n = int(value)
    except (TypeError, ValueError):
        return error(400, "invalid_request_error", "Invalid integer: %s" % value, "parameter_invalid_integer", param)
    if n < 50:
        return error(400, "invalid_request_error", "Amount must be at least $0.50 usd", "amount_too_small", param)
    return None


def idempotent(kind, headers, form, make):
    auth = headers.get("authorization", "")
    if not auth.startswith("Bearer sk_test_"):
        return error(401, "authentication_error", "Invalid API Key provided: %s" % (auth[7:15] + "****" if auth else "(none)"))
    with LOCK:
        queued = STATE.get("stripe_errors") or []
        forced = queued.pop(0) if queued else None
    if forced:
        extra = {"Retry-After": "1"} if forced.get("status") == 429 else None
        return error(forced.get("status", 400), forced.get("type", "invalid_request_error"), forced.get("message", "Injected."),
                     forced.get("code"), forced.get("param"), extra)
    key = headers.get("idempotency-key")
    payload = json.dumps(form, sort_keys=True)
    if key:
        with LOCK:
            seen = STATE.setdefault("stripe_idempotency", {}).get(key)
        if seen is not None:
            if seen[0] != payload:
                return error(400, "idempotency_error",
                             "Keys for idempotent requests can only be used with the same parameters they were first used with. "
                             "Try using a key other than '%s' if you meant to execute a different request." % key)
            return seen[1][0], seen[1][1], {"Idempotent-Replayed": "true"}
    result = make()
    if key and 200 <= result[0] < 300:
        with LOCK:
            STATE.setdefault("stripe_idempotency", {})[key] = (payload, result)
            STATE.setdefault("stripe_objects", {}).setdefault(result[1]["id"], result[1])
    return result


def checkout_session(body, headers, record):
    form = flat(body)

    def make():
        req = nested(form)
        if form.get("mode") not in ("payment", "setup", "subscription"):
            return error(400, "invalid_request_error", "Invalid mode: must be one of payment, setup, or subscription", "parameter_invalid", "mode")
        if not form.get("success_url"):
            return error(400, "invalid_request_error", "Missing required param: success_url.", "parameter_missing", "success_url")
        items = req.get("line_items") or {}
        if not items:
            return error(400, "invalid_request_error", "Missing required param: line_items.", "parameter_missing", "line_items")
        total, currency = 0, None
        for i, item in sorted(items.items()):
            price = item.get("price_data") or {}
            if price.get("currency") not in CURRENCIES:
                return error(400, "invalid_request_error", "Invalid currency: %s" % price.get("currency"), "parameter_invalid",
                             "line_items[%s][price_data][currency]" % i)
            bad = amount_error(price.get("unit_amount"), "line_items[%s][price_data][unit_amount]" % i)
            if bad:
                return bad
            total += int(price["unit_amount"]) * int(item.get("quantity", 1))
            currency = price["currency"]
        sid = "cs_test_" + secrets.token_hex(12)
        return 200, {
            "id": sid, "object": "checkout.session", "mode": form["mode"],
            "url": "https://checkout.stripe.com/c/pay/" + sid,
            "amount_total": total, "currency": currency, "customer_email": form.get("customer_email"),
            "client_reference_id": form.get("client_reference_id"), "metadata": req.get("metadata") or {},
            "payment_intent": None, "payment_status": "unpaid", "status": "open",
            "success_url": form["success_url"], "cancel_url": form.get("cancel_url"),
            "expires_at": int(time.time()) + 86400, "created": int(time.time()), "livemode": False,
        }
    return idempotent("checkout", headers, form, make)


def payment_intent(body, headers, record):
    form = flat(body)

    def make():
        req = nested(form)
        if form.get("currency") not in CURRENCIES:
            return error(400, "invalid_request_error", "Invalid currency: %s" % form.get("currency"), "parameter_invalid", "currency")
        bad = amount_error(form.get("amount"), "amount")
        if bad:
            return bad
        pid = "pi_" + secrets.token_hex(12)
        return 200, {
            "id": pid, "object": "payment_intent", "amount": int(form["amount"]), "currency": form["currency"],
            "client_secret": pid + "_secret_" + secrets.token_hex(12), "metadata": req.get("metadata") or {},
            "status": "requires_payment_method", "description": form.get("description"),
            "receipt_email": form.get("receipt_email"), "created": int(time.time()), "livemode": False,
        }
    return idempotent("payment_intent", headers, form, make)


EXPIRE_PATH = re.compile(r"^/v1/checkout/sessions/([A-Za-z0-9_]+)/expire$")


def expire_session(body, headers, record):
    """POST /v1/checkout/sessions/{id}/expire: an open session expires; any other is refused."""
    sid = EXPIRE_PATH.match(record["path"]).group(1)

    def make():
        with LOCK:
            session = STATE.setdefault("stripe_objects", {}).get(sid)
            if session is None:
                return error(404, "invalid_request_error", "No such checkout.session: '%s'" % sid, "resource_missing", "session")
            if session["status"] != "open":
                return error(400, "invalid_request_error",
                             'Only Checkout Sessions with a status in ["open"] can be expired.')
            session.update(status="expired", url=None)
            return 200, dict(session)
    return idempotent("expire", headers, flat(body), make)


CANCEL_PATH = re.compile(r"^/v1/payment_intents/([A-Za-z0-9_]+)/cancel$")


def cancel_intent(body, headers, record):
    """POST /v1/payment_intents/{id}/cancel: an unpaid intent is canceled; a paid one refused."""
    pid = CANCEL_PATH.match(record["path"]).group(1)

    def make():
        with LOCK:
            intent = STATE.setdefault("stripe_objects", {}).get(pid)
            if intent is None:
                return error(404, "invalid_request_error", "No such payment_intent: '%s'" % pid, "resource_missing", "intent")
            if intent["status"] in ("succeeded", "canceled", "processing"):
                return error(400, "invalid_request_error",
                             "You cannot cancel this PaymentIntent because it has a status of %s." % intent["status"],
                             "payment_intent_unexpected_state")
            intent.update(status="canceled", cancellation_reason=flat(body).get("cancellation_reason"))
            return 200, dict(intent)
    return idempotent("cancel", headers, flat(body), make)


ROUTES = [
    (lambda path: bool(EXPIRE_PATH.match(path)), expire_session),
    (lambda path: bool(CANCEL_PATH.match(path)), cancel_intent),
    (lambda path: path == "/v1/checkout/sessions", checkout_session),
    (lambda path: path == "/v1/payment_intents", payment_intent),
]
