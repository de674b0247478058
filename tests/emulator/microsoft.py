"""Microsoft: Graph's POST /v1.0/me/sendMail (202, no body) and the identity platform's token
endpoint POST /{tenant}/oauth2/v2.0/token (rotates the refresh token, as Microsoft does).
Error body {"error": {"code", "message"}}."""
import re
import time
import uuid

from oauth import authorize, bearer_ok, issue_token, owner_of

TOKEN_PATH = re.compile(r"^/([^/]+)/oauth2/v2\.0/token$")
AUTHORIZE_PATH = re.compile(r"^/([^/]+)/oauth2/v2\.0/authorize$")


def graph_error(status, code, message):
    return status, {"error": {"code": code, "message": message,
                              "innerError": {"date": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                             "request-id": str(uuid.uuid4())}}}


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


def me(query, headers, record):
    """Graph GET /v1.0/me."""
    email = owner_of(headers, "microsoft")
    if email is None:
        return graph_error(401, "InvalidAuthenticationToken", "Access token is empty.")
    return 200, {"id": str(uuid.uuid5(uuid.NAMESPACE_DNS, email)), "mail": email, "userPrincipalName": email,
                 "displayName": email.split("@")[0]}


ROUTES = [
    (lambda path: bool(TOKEN_PATH.match(path)),
     lambda body, headers, record: issue_token(body if isinstance(body, dict) else {}, "microsoft",
                                               TOKEN_PATH.match(record["path"]).group(1))),
    (lambda path: path == "/v1.0/me/sendMail", lambda body, headers, record: graph_send(body, headers)),
]
GET_ROUTES = [
    (lambda path: bool(AUTHORIZE_PATH.match(path)),
     lambda query, headers, record, path: authorize("microsoft", query, AUTHORIZE_PATH.match(path).group(1))),
    (lambda path: path == "/v1.0/me", lambda query, headers, record, path: me(query, headers, record)),
]
