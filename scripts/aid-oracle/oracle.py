"""The AID project's Python client (aid-discovery, pinned in requirements.txt) as an oracle for
tests/aid_differential.rs: one JSON request per stdin line, one JSON answer per stdout line.

Requests:
- {"kind": "select", "answers": ["v=aid2;...", ...]}: the client's discover() over these TXT
  answers (its DNS lookup and endpoint proof stubbed out): the record it selects, or its error.
- {"kind": "proof", "uri", "pka", "kid" (aid1) or null, "nonce" (the 32 challenge bytes as
  unpadded base64url), "now", "domain" or null, "status", "headers": [[name, value], ...]}:
  the client's perform_pka_handshake() with its randomness, clock and HTTP stubbed so that it
  sends the same challenge the harness sent and reads the same answer the endpoint gave.

This only drives the package's public entry points; its verdicts are the package's own.
"""

import base64
import email.message
import json
import sys
import time
import urllib.request

import dns.resolver

import importlib

import aid_py

# The package's `discover` and `pka` names are functions as well as modules: the modules, by name.
discover_module = importlib.import_module("aid_py.discover")
pka_module = importlib.import_module("aid_py.pka")

REAL_GMTIME = time.gmtime


class _Rdata:
    def __init__(self, strings):
        self.strings = strings


class _Answer:
    def __init__(self, answers):
        self._items = [_Rdata((a.encode("utf-8", "surrogateescape"),)) for a in answers]
        self.rrset = type("RRset", (), {"ttl": 300})()

    def __iter__(self):
        return iter(self._items)


def select(answers):
    def resolve(name, rdtype, lifetime=5.0):
        if not answers:
            raise dns.resolver.NXDOMAIN()
        return _Answer(answers)

    dns.resolver.resolve = resolve
    discover_module._perform_pka_for_record = lambda record, timeout, queried_domain=None: False
    try:
        record, _ttl = aid_py.discover("example.com", well_known_fallback=False)
        return {"ok": True, "version": record.get("v"), "uri": record.get("uri"), "proto": record.get("proto")}
    except aid_py.AidError as e:
        return {"ok": False, "code": e.error_code, "why": str(e)}
    except Exception as e:  # the package failing outright is an answer too
        return {"ok": False, "code": "EXCEPTION", "why": f"{type(e).__name__}: {e}"}


class _Response:
    def __init__(self, status, headers):
        self.status = status
        self.headers = email.message.Message()
        for name, value in headers:
            self.headers[name] = value

    def close(self):
        pass


def proof(req):
    nonce = base64.urlsafe_b64decode(req["nonce"] + "=" * (-len(req["nonce"]) % 4))
    pka_module.os.urandom = lambda n: nonce
    pka_module.time.time = lambda: float(req["now"])
    pka_module.time.gmtime = lambda *args: REAL_GMTIME(req["now"]) if not args else REAL_GMTIME(*args)
    response = _Response(req["status"], req["headers"])

    class Opener:
        def open(self, request, timeout=2.0):
            return response

    urllib.request.build_opener = lambda *args, **kwargs: Opener()
    try:
        bound = pka_module.perform_pka_handshake(req["uri"], req["pka"], req.get("kid"), domain=req.get("domain"))
        return {"ok": True, "bound": bool(bound)}
    except aid_py.AidError as e:
        return {"ok": False, "code": e.error_code, "why": str(e)}
    except Exception as e:
        return {"ok": False, "code": "EXCEPTION", "why": f"{type(e).__name__}: {e}"}


def main():
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        answer = select(req["answers"]) if req["kind"] == "select" else proof(req)
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
