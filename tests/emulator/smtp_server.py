#!/usr/bin/python3
"""A real SMTP server for the SMTP provider's tests: Debian's aiosmtpd (python3-aiosmtpd),
which speaks the protocol itself (EHLO, AUTH PLAIN/LOGIN, MAIL, RCPT, DATA, dot-stuffing).
Every message it accepts is appended to a JSON-lines file as {mail_from, rcpt_tos, data, login}.

Like a real relay it refuses some recipients: any address starting with "unknown" gets
550 5.1.1 (permanent), any starting with "greylist" gets 451 4.7.1 (try again later).

Usage: smtp_server.py PORT OUTFILE [LOGIN PASSWORD]   (prints "ready" once listening)
With LOGIN and PASSWORD, AUTH is required (over plain text: this is a test on 127.0.0.1).
"""
import json
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Recorder:
    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("unknown"):
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown in local recipient table" % address
        if address.startswith("greylist"):
            return "451 4.7.1 <%s>: Recipient address rejected: Greylisted, try again later" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        auth = getattr(session, "auth_data", None)
        login = auth.login.decode() if isinstance(auth, LoginPassword) else None
        entry = {"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
                 "data": envelope.original_content.decode("utf-8", "replace"), "login": login}
        with self.lock, open(self.path, "a") as f:
            f.write(json.dumps(entry) + "\n")
        return "250 2.0.0 Ok: queued as %d" % (hash(entry["data"]) & 0xFFFFFF)


def main():
    port, path = int(sys.argv[1]), sys.argv[2]
    login = sys.argv[3].encode() if len(sys.argv) > 4 else None
    password = sys.argv[4].encode() if len(sys.argv) > 4 else None

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.login == login and auth_data.password == password
        # aiosmtpd keeps auth_data as session.auth_data for the rest of the session.
        return AuthResult(success=ok, auth_data=auth_data if ok else None)

    kwargs = {}
    if login:
        kwargs = dict(authenticator=authenticator, auth_required=True, auth_require_tls=False)
    controller = Controller(Recorder(path), hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
