"""Google Maps Platform: the Geocoding API and the Routes API's computeRouteMatrix.

  GET  /maps/api/geocode/json?address=…|latlng=…&key=…
       HTTP 200 with {"results": [...], "status"} whatever happens (Google's way): OK,
       ZERO_RESULTS (an address containing "nowhere"), REQUEST_DENIED (a key not starting
       AIza, with error_message), INVALID_REQUEST (no address or latlng); statuses queued by
       POST /_emulator/maps {"statuses": ["OVER_QUERY_LIMIT", ...]} are answered first.
       Coordinates come from a gazetteer: the fixture below, else a deterministic point in
       Austin, TX from the normalised address (so "12 Elm St." and "12 elm st" agree).
  POST /distanceMatrix/v2:computeRouteMatrix
       X-Goog-Api-Key (403 PERMISSION_DENIED unless AIza…), X-Goog-FieldMask required (400),
       at most 625 elements (400 INVALID_ARGUMENT), departureTime in the past refused (400).
       Answers a JSON array of elements holding only the masked fields, proto3 style (a field
       at its default, such as originIndex 0, is left out). Distance = great circle x 1.3;
       duration at 40 km/h (x1.25 departing 07-09 or 16-18 UTC: departureTime, else now); ROUTE_NOT_FOUND below
       latitude -60 (no roads to Antarctica).
"""
import hashlib
import json
import math
import re
from datetime import datetime, timezone

from state import LOCK, STATE

GAZETTEER = {
    "100 congress ave austin tx": (30.2653, -97.7448, "100 Congress Ave, Austin, TX 78701, USA", "ROOFTOP"),
    "500 e cesar chavez st austin tx": (30.2610, -97.7380, "500 E Cesar Chavez St, Austin, TX 78701, USA", "ROOFTOP"),
    "2100 barton springs rd austin tx": (30.2638, -97.7697, "2100 Barton Springs Rd, Austin, TX 78746, USA", "ROOFTOP"),
    "11200 domain dr austin tx": (30.4021, -97.7253, "11200 Domain Dr, Austin, TX 78758, USA", "ROOFTOP"),
    "10000 research blvd austin tx": (30.3900, -97.7470, "10000 Research Blvd, Austin, TX 78759, USA", "ROOFTOP"),
    # the demo's (Indianapolis)
    "12 elm st indianapolis": (39.7817, -86.1470, "12 Elm St, Indianapolis, IN 46204, USA", "ROOFTOP"),
    "9 oak ave carmel": (39.9784, -86.1180, "9 Oak Ave, Carmel, IN 46032, USA", "ROOFTOP"),
    "88 oak ave carmel": (39.9790, -86.1175, "88 Oak Ave, Carmel, IN 46032, USA", "ROOFTOP"),
    "200 w washington st indianapolis": (39.7671, -86.1608, "200 W Washington St, Indianapolis, IN 46204, USA", "ROOFTOP"),
    "3000 n meridian st indianapolis": (39.8119, -86.1567, "3000 N Meridian St, Indianapolis, IN 46208, USA", "ROOFTOP"),
    "1 lucas oil stadium dr indianapolis": (39.7601, -86.1639, "1 Lucas Oil Stadium Dr, Indianapolis, IN 46225, USA", "ROOFTOP"),
    "8702 keystone crossing indianapolis": (39.9126, -86.1091, "8702 Keystone Crossing, Indianapolis, IN 46240, USA", "ROOFTOP"),
    "6101 n keystone ave indianapolis": (39.8656, -86.1217, "6101 N Keystone Ave, Indianapolis, IN 46220, USA", "ROOFTOP"),
    "3000 s lamar blvd austin tx": (30.2450, -97.7803, "3000 S Lamar Blvd, Austin, TX 78704, USA", "ROOFTOP"),
}


def key_of(address):
    return " ".join(re.sub(r"[^\w]+", " ", address.lower()).replace("_", " ").split())


def place_for(address):
    k = key_of(address)
    if k in GAZETTEER:
        lat, lng, formatted, kind = GAZETTEER[k]
    else:
        h = hashlib.sha256(k.encode()).digest()
        lat = 30.15 + int.from_bytes(h[:4], "big") / 2**32 * 0.30
        lng = -97.95 + int.from_bytes(h[4:8], "big") / 2**32 * 0.35
        formatted, kind = address.strip().title() + ", Austin, TX, USA", "RANGE_INTERPOLATED"
    return {
        "address_components": [],
        "formatted_address": formatted,
        "geometry": {"location": {"lat": round(lat, 7), "lng": round(lng, 7)}, "location_type": kind,
                     "viewport": {}},
        "place_id": "ChIJ" + hashlib.sha256(k.encode()).hexdigest()[:23],
        "types": ["street_address"],
        **({"partial_match": True} if k.startswith("near ") else {}),
    }


def configure(body):
    with LOCK:
        STATE.setdefault("maps_statuses", []).extend(body.get("statuses") or [])
    return 200, {"ok": True}


def geocode(query, headers, record, path):
    q = {k: v[0] for k, v in query.items()}
    with LOCK:
        queued = STATE.get("maps_statuses") or []
        forced = queued.pop(0) if queued else None
    if not (q.get("key") or "").startswith("AIza"):
        return 200, {"error_message": "The provided API key is invalid.", "results": [], "status": "REQUEST_DENIED"}
    if forced:
        messages = {"OVER_QUERY_LIMIT": "You have exceeded your rate-limit for this API.",
                    "OVER_DAILY_LIMIT": "You have exceeded your daily request quota for this API.",
                    "REQUEST_DENIED": "This API project is not authorized to use this API."}
        body = {"results": [], "status": forced}
        if forced in messages:
            body["error_message"] = messages[forced]
        return 200, body
    if q.get("address", "").strip():
        if "nowhere" in q["address"].lower():
            return 200, {"results": [], "status": "ZERO_RESULTS"}
        return 200, {"results": [place_for(q["address"])], "status": "OK"}
    if q.get("latlng"):
        try:
            lat, lng = (float(x) for x in q["latlng"].split(","))
        except ValueError:
            return 200, {"error_message": "Invalid request. Invalid 'latlng' parameter.", "results": [],
                         "status": "INVALID_REQUEST"}
        if lat < -60:
            return 200, {"results": [], "status": "ZERO_RESULTS"}
        n = int(abs(lat * 1000) + abs(lng * 1000)) % 9000 + 100
        return 200, {"results": [{
            "formatted_address": "%d Reverse Rd, Austin, TX, USA" % n,
            "geometry": {"location": {"lat": lat, "lng": lng}, "location_type": "ROOFTOP"},
            "place_id": "ChIJrev%d" % n, "types": ["street_address"]}], "status": "OK"}
    return 200, {"error_message": "Invalid request. Missing the 'address', 'components', 'latlng' or 'place_id' parameter.",
                 "results": [], "status": "INVALID_REQUEST"}


def google_error(code, status, message):
    return code, {"error": {"code": code, "message": message, "status": status}}


def haversine(a, b):
    la1, la2 = math.radians(a[0]), math.radians(b[0])
    h = math.sin((la2 - la1) / 2) ** 2 + math.cos(la1) * math.cos(la2) * math.sin(math.radians(b[1] - a[1]) / 2) ** 2
    return 2 * 6371008.8 * math.asin(min(1.0, math.sqrt(h)))


def point(w):
    ll = (((w or {}).get("waypoint") or {}).get("location") or {}).get("latLng") or {}
    return ll.get("latitude", 0.0), ll.get("longitude", 0.0)


def route_matrix(body, headers, record):
    if not (headers.get("x-goog-api-key") or "").startswith("AIza"):
        return google_error(403, "PERMISSION_DENIED", "API key not valid. Please pass a valid API key.")
    mask = headers.get("x-goog-fieldmask")
    if not mask:
        return google_error(400, "INVALID_ARGUMENT", "FieldMask is a required parameter. See https://cloud.google.com/apis/docs/system-parameters on how to provide it.")
    if not isinstance(body, dict):
        return google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
    origins, destinations = body.get("origins") or [], body.get("destinations") or []
    if not origins or not destinations:
        return google_error(400, "INVALID_ARGUMENT", "Origins and destinations must be set.")
    if len(origins) * len(destinations) > 625:
        return google_error(400, "INVALID_ARGUMENT",
                            "Number of elements in the request (%d) exceeds the limit of 625." % (len(origins) * len(destinations)))
    # traffic at the departure time, or now without one (as Google does)
    t = datetime.now(timezone.utc)
    if body.get("departureTime"):
        t = datetime.fromisoformat(body["departureTime"].replace("Z", "+00:00"))
        if t < datetime.now(timezone.utc):
            return google_error(400, "INVALID_ARGUMENT", "Timestamp must be set to a future time.")
    factor = 1.25 if t.hour in (7, 8, 16, 17) else 1.0
    fields = set(f.strip() for f in mask.split(","))
    out = []
    for i, o in enumerate(origins):
        for j, d in enumerate(destinations):
            a, b = point(o), point(d)
            element = {"originIndex": i, "destinationIndex": j, "status": {}}
            if a[0] < -60 or b[0] < -60:
                element["condition"] = "ROUTE_NOT_FOUND"
            else:
                metres = round(haversine(a, b) * 1.3)
                element.update(condition="ROUTE_EXISTS", distanceMeters=metres,
                               duration="%ds" % round(metres / (40 / 3.6) * factor))
            # the field mask, then proto3 JSON: fields at their default value are left out
            element = {k: v for k, v in element.items()
                       if (k in fields or "*" in fields) and v not in (0, "0s")}
            out.append(element)
    return 200, out


ROUTES = [
    (lambda path: path == "/distanceMatrix/v2:computeRouteMatrix", route_matrix),
]
GET_ROUTES = [
    (lambda path: path == "/maps/api/geocode/json", geocode),
]
