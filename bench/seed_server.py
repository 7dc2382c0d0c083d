#!/usr/bin/env python3
"""The socket tutorial's server.py, ported to Python 3: the baseline of `cargo xtask bench`.

The tutorial's loop, unchanged in substance: socket(), bind, listen(5), then for each client
accept, print 'Got connection from', addr, send the greeting, close. What a benchmark needs
to drive it, and nothing more:
  * a readiness line in greet-server's form, "Listening on ('127.0.0.1', PORT) tcp", flushed;
  * --port 0 for an ephemeral port, --quiet, --backlog N (default 5, as the tutorial);
  * --udp: answer each datagram with the greeting (recvfrom/sendto);
  * a peer that vanished does not end the loop (in the tutorial it would).
"""
import argparse
import socket
import sys

GREETING = b'Thank you for connecting'


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--host', default='127.0.0.1')
    ap.add_argument('--port', type=int, default=12345)
    ap.add_argument('--udp', action='store_true')
    ap.add_argument('--quiet', action='store_true')
    ap.add_argument('--backlog', type=int, default=5)
    a = ap.parse_args()
    family = socket.AF_INET6 if ':' in a.host else socket.AF_INET

    if a.udp:
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.bind((a.host, a.port))
        print('Listening on', s.getsockname()[:2], 'udp', flush=True)
        while True:
            _, addr = s.recvfrom(2048)
            try:
                s.sendto(GREETING, addr)
            except OSError:
                pass

    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((a.host, a.port))
    s.listen(a.backlog)
    print('Listening on', s.getsockname()[:2], 'tcp', flush=True)
    while True:
        try:
            c, addr = s.accept()
        except OSError:
            continue
        if not a.quiet:
            print('Got connection from', addr)
        try:
            c.send(GREETING)
        except OSError:
            pass
        c.close()


if __name__ == '__main__':
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
