#!/usr/bin/env python3
"""A keep-alive HTTP/1.1 server and its two kinds of callers, for the e2e tests that name a
TIME-WAIT storm's caller from its sockets (tests/e2e/incidents.rs). Standard library only.

    http_callers.py server PORT_FILE [DELAY]   # listens on a free loopback port, writes it;
                                               # answers each call after DELAY seconds
    http_callers.py pooled PORT RATE           # one kept-alive connection, RATE calls a second
    http_callers.py per-call PORT RATE GO_FILE # once GO_FILE exists: a new connection per call

Each runs until killed. No spans, no logs: only their sockets say who calls how.
"""

import http.client
import http.server
import os
import socketserver
import sys
import time


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    delay = 0.0

    def do_GET(self):
        if self.delay:
            time.sleep(self.delay)
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def call(port, rate, per_call):
    conn = None
    while True:
        try:
            if conn is None or per_call:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/x")
            conn.getresponse().read()
            if per_call:
                conn.close()
        except OSError:
            conn = None
        time.sleep(1.0 / rate)


def main():
    mode = sys.argv[1]
    if mode == "server":
        Handler.delay = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
        server = Server(("127.0.0.1", 0), Handler)
        with open(sys.argv[2] + ".tmp", "w") as f:
            f.write(str(server.server_address[1]))
        os.rename(sys.argv[2] + ".tmp", sys.argv[2])
        server.serve_forever()
    port, rate = int(sys.argv[2]), float(sys.argv[3])
    if mode == "per-call":
        while not os.path.exists(sys.argv[4]):
            time.sleep(0.05)
    call(port, rate, mode == "per-call")


if __name__ == "__main__":
    main()
