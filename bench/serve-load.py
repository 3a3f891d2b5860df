#!/usr/bin/env python3
"""Load on `myelin serve`: N running CPU jobs logging every iteration, C concurrent SSE clients on
one of them, and a thread calling the job list and job pages meanwhile.

Reports: request latency p50/p99, events/s delivered to the clients in total, whether every
client got every event of the job (ids 1..last, none missing, none twice), and the write-to-client
latency: for each train event, the time a client received it minus the time its line appeared
in the job's metrics.jsonl (a thread of this bench polls the file's size every ~1 ms with
timestamps; the events carry no wall time of their own). Both clocks are this process's.

    MYELIN_BINARY=build/myelin python3 bench/serve-load.py [--clients 100] [--jobs 4]
"""
import argparse
import http.client
import json
import os
import platform
import selectors
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "server"))
from harness import Server, quick_job, wait_for  # noqa: E402


def ms(xs):
    return {k: round(pct(xs, p) * 1e3, 1) for k, p in (("p50", 50), ("p99", 99), ("max", 100))}


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


class SseClient:
    """One event-stream connection, read without blocking (all clients share one selector)."""

    def __init__(self, port, path, token):
        self.asked = time.time()
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
                           "Authorization: Bearer %s\r\n\r\n" % (path, token)).encode())
        self.sock.setblocking(False)
        self.raw = b""        # bytes not yet de-chunked
        self.text = b""       # de-chunked SSE text not yet split into events
        self.headers_done = False
        self.chunk_left = None  # bytes left in the current chunk (None: expect a size line)
        self.closed = False
        self.ids = []         # event ids in arrival order
        self.train = {}       # train iteration -> receive time
        self.seq = {}         # train iteration -> event id

    def feed(self, data, now):
        self.raw += data
        if not self.headers_done:
            end = self.raw.find(b"\r\n\r\n")
            if end < 0:
                return
            status = self.raw.split(b"\r\n", 1)[0]
            assert b" 200 " in status, status
            self.raw = self.raw[end + 4:]
            self.headers_done = True
            self.answered = now
        while True:  # de-chunk
            if self.chunk_left is None:
                nl = self.raw.find(b"\r\n")
                if nl < 0:
                    break
                size = int(self.raw[:nl].split(b";")[0], 16)
                self.raw = self.raw[nl + 2:]
                if size == 0:
                    self.closed = True
                    break
                self.chunk_left = size
            if len(self.raw) < self.chunk_left + 2:
                take = min(len(self.raw), self.chunk_left)
                self.text += self.raw[:take]
                self.raw = self.raw[take:]
                self.chunk_left -= take
                break
            self.text += self.raw[:self.chunk_left]
            self.raw = self.raw[self.chunk_left + 2:]
            self.chunk_left = None
        while True:
            end = self.text.find(b"\n\n")
            if end < 0:
                break
            block, self.text = self.text[:end], self.text[end + 2:]
            ev_id, kind, data = None, None, None
            for line in block.split(b"\n"):
                if line.startswith(b"id: "):
                    ev_id = int(line[4:])
                elif line.startswith(b"event: "):
                    kind = line[7:]
                elif line.startswith(b"data: "):
                    data = line[6:]
            if ev_id is None:
                continue  # a keep-alive comment
            self.ids.append(ev_id)
            if kind == b"metrics" and b'"event":"train"' in data:
                it = json.loads(data)["iter"]
                self.train[it] = now
                self.seq[it] = ev_id


def read_clients(clients, stop, cpu):
    t0 = time.thread_time()
    sel = selectors.DefaultSelector()
    for c in clients:
        sel.register(c.sock, selectors.EVENT_READ, c)
    open_ = len(clients)
    while open_ and not stop.is_set():
        for key, _ in sel.select(timeout=0.5):
            c = key.data
            now = time.time()
            try:
                data = c.sock.recv(1 << 16)
            except BlockingIOError:
                continue
            if data:
                c.feed(data, now)
            if not data or c.closed:
                c.closed = True
                sel.unregister(c.sock)
                c.sock.close()
                open_ -= 1
    cpu.append(time.thread_time() - t0)


def poll_file(path, written, stop):
    """Times each train line's appearance in metrics.jsonl: iter -> first time seen."""
    size, tail = 0, b""
    while not stop.is_set():
        try:
            n = os.path.getsize(path)
        except OSError:
            n = 0
        if n > size:
            now = time.time()
            with open(path, "rb") as f:
                f.seek(size)
                chunk = f.read(n - size)
            size += len(chunk)
            lines = (tail + chunk).split(b"\n")
            tail = lines.pop()
            for line in lines:
                if b'"event":"train"' in line:
                    written.setdefault(json.loads(line)["iter"], now)
        time.sleep(0.001)


def call_api(srv, jobs, latencies, stop):
    conn = None
    k = 0
    while not stop.is_set():
        path = "/api/v1/jobs" if k % 2 == 0 else "/api/v1/jobs/%d" % jobs[(k // 2) % len(jobs)]
        k += 1
        t = time.perf_counter()
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
            conn.request("GET", path, headers={"Authorization": "Bearer " + srv.token})
            r = conn.getresponse()
            r.read()
            assert r.status == 200, r.status
        except (OSError, http.client.HTTPException):
            conn = None
            continue
        latencies.append(time.perf_counter() - t)
        time.sleep(0.01)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--jobs", type=int, default=4)
    ap.add_argument("--iterations", type=int, default=500)
    ap.add_argument("--json", help="write the figures here too")
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="serve-load-")
    with Server(tmp, "--cpu-slots", str(a.jobs), "--threads", str(a.clients + 64)) as srv:
        fm = srv.dataset()["id"]
        job = lambda i: srv.job(**quick_job(  # noqa: E731
            fm, "load %d" % i, iterations=a.iterations, threads=1,
            **{"log-every": 1, "eval-every": 100}))
        watched = job(0)
        run_dir = srv.get_job(watched)["run_dir"]
        stop = threading.Event()
        written = {}
        poller = threading.Thread(target=poll_file,
                                  args=(os.path.join(run_dir, "metrics.jsonl"), written, stop))
        poller.start()
        # All clients connect at once, as browsers do after a server restart.
        clients = [None] * a.clients

        def connect(k):
            clients[k] = SseClient(srv.port, "/api/v1/jobs/%d/events" % watched, srv.token)
        connecting = [threading.Thread(target=connect, args=(k,)) for k in range(a.clients)]
        for t in connecting:
            t.start()
        for t in connecting:
            t.join()
        reader_cpu = []
        reader = threading.Thread(target=read_clients, args=(clients, stop, reader_cpu))
        reader.start()
        jobs = [watched] + [job(i) for i in range(1, a.jobs)]
        latencies = []
        caller = threading.Thread(target=call_api, args=(srv, jobs, latencies, stop))
        caller.start()
        t0 = time.time()
        ended = [srv.wait_job(j, timeout=600) for j in jobs]
        wall = time.time() - t0
        reader.join(timeout=60)
        stop.set()
        for t in (poller, caller, reader):
            t.join()

        expected = [i for i, _, _ in srv.events("/api/v1/jobs/%d/events" % watched, timeout=30)]
        complete = sum(c.ids == expected for c in clients)
        delivered = sum(len(c.ids) for c in clients)
        first = min(min(c.train.values()) for c in clients if c.train)
        last = max(max(c.train.values()) for c in clients if c.train)
        lag = [t - written[i] for c in clients for i, t in c.train.items() if i in written]
        all_events = srv.ok("GET", "/api/v1/jobs/%d/metrics" % watched)["last"]
        # The server stores each event with the time it stored it: split the latency there.
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(srv.data, "myelin.db"), uri=True)
        stored = dict(db.execute("SELECT seq, time FROM events WHERE job = ?", (watched,)))
        db.close()
        c0 = clients[0]
        follow = [stored[c0.seq[i]] - written[i] for i in c0.train if i in written]
        deliver = [t - stored[c.seq[i]] for c in clients for i, t in c.train.items()]
        # Steady state: lines written once every client had its answer (before, a client still
        # connecting gets the backlog when it is answered).
        all_in = max(c.answered for c in clients)
        steady = [t - written[i] for c in clients for i, t in c.train.items()
                  if written.get(i, 0) > all_in]
        connect_s = [c.answered - c.asked for c in clients]
        out = {
            "cpu": subprocess.run(["sh", "-c", "lscpu | sed -n 's/^Model name: *//p'"],
                                  capture_output=True, text=True).stdout.strip(),
            "cores": os.cpu_count(), "python": platform.python_version(),
            "clients": a.clients, "jobs": a.jobs, "iterations": a.iterations,
            "states": [j["state"] for j in ended],
            "wall_seconds": round(wall, 2),
            "bench_reader_cpu_seconds": round(sum(reader_cpu), 2),
            "job_events": len(expected), "last_metrics_seq": all_events,
            "clients_with_every_event": complete,
            "events_delivered": delivered,
            "events_per_second": round(delivered / max(1e-9, last - first), 1),
            "requests": len(latencies),
            "request_ms": {"p50": round(pct(latencies, 50) * 1e3, 2),
                           "p99": round(pct(latencies, 99) * 1e3, 2),
                           "max": round(max(latencies) * 1e3, 2)},
            "train_events_timed": len(lag),
            "connect_to_answer_ms": ms(connect_s),
            "steady_train_events_timed": len(steady),
            "steady_write_to_client_ms": ms(steady),
            "write_to_client_ms": ms(lag),
            "write_to_stored_ms": ms(follow),
            "stored_to_client_ms": ms(deliver),
        }
        print(json.dumps(out, indent=2))
        if a.json:
            with open(a.json, "w") as f:
                json.dump(out, f, indent=2)
        ok = all(s == "done" for s in out["states"]) and complete == a.clients
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
