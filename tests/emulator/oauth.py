"""OAuth 2.0 as Google and Microsoft answer it: the authorization endpoint (the browser's
side: a user who consents, declines or unticks scopes, set with POST /_emulator/oauth), the
token endpoint's authorization-code grant with PKCE S256 (RFC 7636: a wrong verifier is
invalid_grant) and refresh-token grant (RFC 6749 sections 4.1 and 6), Google's revocation
endpoint, and the bearer check of the APIs that take their access tokens."""
import base64
import hashlib
import secrets
import time
import uuid
from urllib.parse import urlencode

from state import LOCK, STATE

ACCESS_TOKEN_LIFETIME = 3599


def bearer_ok(headers, provider):
    token = headers.get("authorization", "")[len("Bearer "):]
    with LOCK:
        entry = STATE["access"].get(token)
    return entry is not None and entry[0] == provider and (entry[1] is None or entry[1] > time.time())


def app():
    """The emulated OAuth app and user: who signs in, what they consent to, which redirect URIs
    and client secret the app has registered (POST /_emulator/oauth {"app": {...}})."""
    with LOCK:
        return dict(STATE.setdefault("app", {}))


def first(q, k):
    return (q.get(k) or [""])[0]


def authorize(provider, query, tenant=None):
    """GET on the authorization endpoint, as the browser does it: a 302 back to redirect_uri
    with ?code=&state= (or ?error=access_denied), or the provider's error page (400)."""
    a = app()
    redirect_uri = first(query, "redirect_uri")
    if not first(query, "client_id"):
        return 400, {"error": "invalid_request", "error_description": "Missing required parameter: client_id"}
    if a.get("redirect_uris") is not None and redirect_uri not in a["redirect_uris"]:
        # Google shows "Error 400: redirect_uri_mismatch" instead of redirecting.
        return 400, {"error": "redirect_uri_mismatch",
                     "error_description": "The redirect URI in the request, %s, does not match the ones authorized for the OAuth client." % redirect_uri}
    if first(query, "response_type") != "code" or first(query, "code_challenge_method") != "S256" or not first(query, "code_challenge"):
        return 400, {"error": "invalid_request", "error_description": "PKCE with code_challenge_method=S256 is required"}
    state = first(query, "state")
    sep = "&" if "?" in redirect_uri else "?"
    if a.get("consent") == "deny":
        loc = redirect_uri + sep + urlencode({"error": "access_denied", "error_description": "The user denied access", "state": state})
        return 302, None, {"Location": loc}
    asked = first(query, "scope").split()
    granted = [s for s in asked if s not in (a.get("drop_scopes") or [])]
    code = ("4/0emu-" if provider == "google" else "M.C5_emu-") + secrets.token_urlsafe(24)
    with LOCK:
        STATE.setdefault("codes", {})[code] = {
            "provider": provider, "client_id": first(query, "client_id"), "redirect_uri": redirect_uri,
            "challenge": first(query, "code_challenge"), "scopes": granted, "used": False,
            "email": (a.get("users") or {}).get(provider, "user@example.com"), "tenant": tenant}
    loc = redirect_uri + sep + urlencode({"code": code, "state": state} | ({"scope": " ".join(granted)} if provider == "google" else {}))
    return 302, None, {"Location": loc}


def s256(verifier):
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def issue_access(provider, email):
    access = ("ya29.emu-" if provider == "google" else "EwB.emu-") + secrets.token_urlsafe(16)
    with LOCK:
        STATE["access"][access] = (provider, time.time() + ACCESS_TOKEN_LIFETIME)
        STATE.setdefault("owners", {})[access] = email
    return access


def code_grant(form, provider, tenant=None):
    """The authorization-code grant with PKCE."""
    a = app()
    code = first(form, "code")
    with LOCK:
        entry = STATE.setdefault("codes", {}).get(code)
        fresh = entry is not None and not entry["used"]
        if entry is not None:
            entry["used"] = True
    if a.get("tenant") and provider == "microsoft" and tenant not in ("common", "organizations", a["tenant"]):
        return 400, {"error": "unauthorized_client",
                     "error_description": "AADSTS700016: Application with identifier '%s' was not found in the directory '%s'." % (first(form, "client_id"), tenant)}
    if not fresh:
        return 400, {"error": "invalid_grant", "error_description": "Malformed auth code." if entry is None else "Code was already redeemed."}
    if entry["client_id"] != first(form, "client_id"):
        return 400, {"error": "invalid_grant", "error_description": "The code was issued to another client."}
    if entry["redirect_uri"] != first(form, "redirect_uri"):
        return 400, {"error": "redirect_uri_mismatch", "error_description": "Bad Request"}
    if s256(first(form, "code_verifier")) != entry["challenge"]:
        return 400, {"error": "invalid_grant", "error_description": "Invalid code verifier."}
    access = issue_access(provider, entry["email"])
    refresh = ("1//0emu-" if provider == "google" else "M.R3_emu-") + secrets.token_urlsafe(16)
    with LOCK:
        STATE["refresh"][refresh] = provider
        STATE.setdefault("owners", {})[refresh] = entry["email"]
    scope = " ".join(entry["scopes"]) if provider == "google" else " ".join(
        s for s in entry["scopes"] if s not in ("openid", "offline_access")) 
    answer = {"access_token": access, "expires_in": ACCESS_TOKEN_LIFETIME, "scope": scope, "token_type": "Bearer",
              "refresh_token": refresh}
    if provider == "google" and a.get("no_refresh_token"):
        del answer["refresh_token"]
    return 200, answer


def revoke(form):
    """Google's POST /revoke (token=...): 200 and the grant is gone, 400 invalid_token."""
    token = first(form, "token")
    with LOCK:
        known = token in STATE["refresh"] or token in STATE["access"]
        if known:
            STATE["revoked"].add(token)
            STATE["access"].pop(token, None)
    return (200, {}) if known else (400, {"error": "invalid_token", "error_description": "Token expired or revoked"})


def owner_of(headers, provider):
    """The address of the user an access token was issued to (userinfo, Graph /me)."""
    if not bearer_ok(headers, provider):
        return None
    token = headers.get("authorization", "")[len("Bearer "):]
    with LOCK:
        return STATE.setdefault("owners", {}).get(token, "user@example.com")


def issue_token(form, provider, tenant=None):
    """The token endpoint: the refresh-token grant of RFC 6749 section 6, or the
    authorization-code grant (section 4.1) with PKCE."""
    grant = (form.get("grant_type") or [""])[0]
    refresh = (form.get("refresh_token") or [""])[0]
    if not (form.get("client_id") or [""])[0] or not (form.get("client_secret") or [""])[0] or (
            app().get("client_secret") is not None and first(form, "client_secret") != app()["client_secret"]):
        return 401, {"error": "invalid_client", "error_description": "The OAuth client was not found."}
    if grant == "authorization_code":
        return code_grant(form, provider, tenant)
    if grant != "refresh_token":
        return 400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type: " + grant}
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
        # the refreshed token is the same user's (owners seeded through /_emulator/oauth)
        owners = STATE.setdefault("owners", {})
        if refresh in owners:
            owners[access] = owners[refresh]
    if provider == "google":
        return 200, {"access_token": access, "expires_in": ACCESS_TOKEN_LIFETIME,
                     "scope": "https://www.googleapis.com/auth/gmail.send", "token_type": "Bearer"}
    rotated = "M.R3_emu-" + secrets.token_urlsafe(16)
    with LOCK:
        STATE["refresh"][rotated] = "microsoft"
        if refresh in STATE.setdefault("owners", {}):
            STATE["owners"][rotated] = STATE["owners"][refresh]
    return 200, {"token_type": "Bearer", "scope": (form.get("scope") or [""])[0], "expires_in": ACCESS_TOKEN_LIFETIME,
                 "ext_expires_in": ACCESS_TOKEN_LIFETIME, "access_token": access, "refresh_token": rotated}


