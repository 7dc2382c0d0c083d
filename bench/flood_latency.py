#!/usr/bin/env python3
"""One peer must not starve the others: latency of a small client under a flood.

Starts an echo server (any program that prints `Listening on HOST:PORT` first and echoes
what it reads), then for DURATION seconds: FLOODERS clients each write 1 MiB chunks as
fast as the server takes them and read their echo back (so back-pressure never holds
them); one probe client sends 5 bytes every 20 ms and times each echo; every 100 ms a new
client connects and times its first 5-byte echo. Prints one JSON line: the probe's and
the new clients' worst and median latency in ms, the flood's echoed MiB/s, and the
server's CPU time per echoed MiB (user + system, from /proc), which the client's own
scheduling does not blur.

    bench/flood_latency.py target/release/examples/echo [DURATION] [FLOODERS]

`cargo xtask bench flood` runs it three times (DURATION 5, FLOODERS 2) against the release
echo example, prints the runs and their medians, and writes target/bench/flood-latest.json.

Loopback only; every loop is bounded by DURATION.
"""
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time


def echo_once(sock, payload=b"hello"):
    start = time.perf_counter()
    sock.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = sock.recv(len(payload) - len(got))
        if not chunk:
            raise RuntimeError("echo closed")
        got += chunk
    return (time.perf_counter() - start) * 1000


def cpu_seconds(pid):
    """User + system CPU time of process `pid` so far (/proc/PID/stat, clock ticks)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    server_cmd = sys.argv[1]
    duration = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
    flooders = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    server = subprocess.Popen([server_cmd, "127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline().strip()
        host, port = line.removeprefix("Listening on ").rsplit(":", 1)
        addr = (host, int(port))
        end = time.monotonic() + duration
        echoed = [0] * flooders

        def flood_writer(sock):
            chunk = b"x" * (1 << 20)
            while time.monotonic() < end:
                sock.sendall(chunk)
            sock.shutdown(socket.SHUT_WR)

        def flood_reader(sock, i):
            while True:
                data = sock.recv(1 << 20)
                if not data:
                    return
                echoed[i] += len(data)

        threads = []
        socks = []
        for i in range(flooders):
            s = socket.create_connection(addr)
            socks.append(s)
            threads.append(threading.Thread(target=flood_writer, args=(s,)))
            threads.append(threading.Thread(target=flood_reader, args=(s, i)))
        started = time.monotonic()
        cpu_before = cpu_seconds(server.pid)
        for t in threads:
            t.start()
        probe = socket.create_connection(addr)
        probe.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        probe_ms, new_ms = [], []
        next_new = time.monotonic()
        while time.monotonic() < end - 0.2:
            probe_ms.append(echo_once(probe))
            if time.monotonic() >= next_new:
                t0 = time.perf_counter()
                c = socket.create_connection(addr)
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                echo_once(c)
                new_ms.append((time.perf_counter() - t0) * 1000)
                c.close()
                next_new += 0.1
            time.sleep(0.02)
        for t in threads:
            t.join(timeout=duration + 10)
        elapsed = time.monotonic() - started
        cpu = cpu_seconds(server.pid) - cpu_before
        print(json.dumps({
            "server": server_cmd,
            "probe_max_ms": round(max(probe_ms), 2),
            "probe_median_ms": round(statistics.median(probe_ms), 3),
            "probes": len(probe_ms),
            "new_client_max_ms": round(max(new_ms), 2),
            "new_client_median_ms": round(statistics.median(new_ms), 3),
            "flood_mib_per_s": round(sum(echoed) / elapsed / (1 << 20), 1),
            "server_cpu_ms_per_mib": round(cpu * 1000 / (sum(echoed) / (1 << 20)), 3),
        }))
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
