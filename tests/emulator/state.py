"""The emulator's shared state: what it received, the faults and tokens it was told about."""
import threading

LOCK = threading.Lock()
STATE = {}


def reset():
    with LOCK:
        STATE.clear()
        STATE.update(requests=[], faults=[], idempotency={}, rate=0, recent=[],
                     refresh={}, access={}, revoked=set(), in_flight=set())


reset()
