"""Shared pieces for API tests and benches against a real `myelin serve` (stdlib only).

    with Server(tmp_dir, "--cpu-slots", "1") as s:
        status, body = s.api("GET", "/api/v1/jobs")
        for ev_id, kind, data in s.events("/api/v1/jobs/1/events", timeout=60): ...

The binary is $MYELIN_BINARY, else the `myelin` built last under build*/.
"""
import contextlib
import http.client
import json
import os
import resource
import signal
import socket
import sqlite3
import struct
import subprocess
import time
import urllib.parse
import uuid
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FASHION = "/usr/share/datasets/fashion-mnist"


class Unavailable(Exception):
    """No binary to test: pytest callers turn this into a skip."""


def find_binary():
    env = os.environ.get("MYELIN_BINARY")
    if env:
        return env
    found = [os.path.join(ROOT, d, "myelin") for d in os.listdir(ROOT) if d.startswith("build")]
    found = [p for p in found if os.access(p, os.X_OK)]
    if not found:
        raise Unavailable("no myelin binary (set MYELIN_BINARY)")
    return max(found, key=os.path.getmtime)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout, interval=0.1, what="condition"):
    """Calls predicate until it returns something truthy; returns that, or raises after timeout."""
    deadline = time.time() + timeout
    while True:
        got = predicate()
        if got:
            return got
        if time.time() > deadline:
            raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(interval)


# ---- request bodies ----

def multipart(fields):
    """fields: {name: bytes | str | (filename, bytes, content_type)} -> (body, content type)."""
    boundary = uuid.uuid4().hex
    out = b""
    for name, value in fields.items():
        if isinstance(value, tuple):
            filename, data, ctype = value
            head = ('Content-Disposition: form-data; name="%s"; filename="%s"\r\n'
                    "Content-Type: %s\r\n" % (name, filename, ctype))
        else:
            data = value.encode() if isinstance(value, str) else value
            head = 'Content-Disposition: form-data; name="%s"\r\n' % name
        out += ("--%s\r\n%s\r\n" % (boundary, head)).encode() + data + b"\r\n"
    out += ("--%s--\r\n" % boundary).encode()
    return out, "multipart/form-data; boundary=" + boundary


def png_bytes(w, h, color):
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
    row = b"\x00" + bytes(color) * w
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(row * h)) + chunk(b"IEND", b""))


def is_png(data):
    return data[:8] == b"\x89PNG\r\n\x1a\n"


# ---- the server ----

class Server:
    """A `myelin serve` child on a free port with its own data dir; a context manager."""

    def __init__(self, tmp, *flags, data_dir=None, address_space=None):
        """address_space: a limit in bytes on the server's address space, which its trainers
        inherit (RLIMIT_AS), so that a test can run a job out of memory on any machine."""
        self.tmp = str(tmp)
        self.address_space = address_space
        self.data = data_dir or os.path.join(self.tmp, "data")
        self.flags = list(flags)
        self.proc = None
        self.log = None
        self.port = None
        self.token = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        self.end_jobs()

    def end_jobs(self):
        """Trainers outlive a stopped server (the next one reattaches them); a test's must not
        outlive the test, or a job left running loads every test after it."""
        path = os.path.join(self.data, "myelin.db")
        if not os.path.exists(path):
            return
        with contextlib.closing(sqlite3.connect(path)) as db:
            pids = [r[0] for r in db.execute("SELECT pid FROM jobs WHERE pid IS NOT NULL")]
        for pid in pids:
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    if b"myelin" in f.read():
                        os.killpg(pid, signal.SIGKILL)
            except (OSError, ValueError):
                pass  # ended already, or a Slurm job id

    def start(self, timeout=30):
        self.port = free_port()
        self.log_path = os.path.join(self.tmp, "serve-%d.log" % self.port)
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [find_binary(), "serve", "--data-dir", self.data, "--port", str(self.port)] +
            self.flags, stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=self.limit_address_space)

        def up():
            assert self.proc.poll() is None, "myelin serve exited: see " + self.log_path
            try:
                return self.api("GET", "/api/v1/health", token=None)[0] == 200
            except OSError:
                return False
        wait_for(up, timeout, what="the server to answer /health")
        with open(os.path.join(self.data, "token")) as f:
            self.token = f.read().strip()
        return self

    def limit_address_space(self):
        if self.address_space:
            resource.setrlimit(resource.RLIMIT_AS, (self.address_space, self.address_space))

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.log:
            self.log.close()
            self.log = None

    def kill9(self):
        self.stop(signal.SIGKILL)

    # ---- HTTP ----

    def request(self, method, path, body=None, raw=None, ctype=None, token="default",
                headers=None, timeout=60):
        """-> (status, headers, bytes). body is JSON; raw is bytes sent as is. token=None: none;
        a cookie string in headers works the same way as the token."""
        h = dict(headers or {})
        data = None
        if body is not None:
            data, h["Content-Type"] = json.dumps(body).encode(), "application/json"
        elif raw is not None:
            data, h["Content-Type"] = raw, ctype or "application/octet-stream"
        elif method in ("POST", "PUT", "PATCH"):
            data = b""  # the server wants a Content-Length on every POST
        if token == "default":
            token = self.token
        if token:
            h["Authorization"] = "Bearer " + token
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=data, headers=h)
            r = conn.getresponse()
            return r.status, r.headers, r.read()
        finally:
            conn.close()

    def api(self, method, path, body=None, token="default", **kw):
        """-> (status, parsed JSON or None when the answer is not JSON)."""
        status, headers, data = self.request(method, path, body, token=token, **kw)
        if headers.get("Content-Type", "").startswith("application/json"):
            return status, json.loads(data)
        return status, None

    def ok(self, method, path, body=None, expect=200, **kw):
        status, out = self.api(method, path, body, **kw)
        assert status == expect, (method, path, status, out)
        return out

    def events(self, path, timeout=60, last_event_id=None, token="default", headers=None):
        """Yields (id, event, data) from an SSE stream until it ends; AssertionError when no
        event (keep-alives included) arrives within `timeout` seconds."""
        return read_sse(self.port, path, token=self.token if token == "default" else token,
                        timeout=timeout, last_event_id=last_event_id, headers=headers)

    # ---- helpers on the API ----

    def dataset(self, name="fm", source="fashion-mnist", timeout=180, **fields):
        d = self.ok("POST", "/api/v1/datasets", dict(name=name, source=source, **fields),
                    expect=201)
        return wait_for(lambda: (lambda x: x if x["state"] != "building" else None)(
            self.ok("GET", "/api/v1/datasets/%d" % d["id"])), timeout,
            interval=0.2, what="dataset %d" % d["id"])

    def job(self, **fields):
        return self.ok("POST", "/api/v1/jobs", fields, expect=201)["id"]

    def get_job(self, job):
        return self.ok("GET", "/api/v1/jobs/%d" % job)

    def wait_job(self, job, states=("done", "failed", "aborted"), timeout=120):
        def ended():
            j = self.get_job(job)
            return j if j["state"] in states else None
        return wait_for(ended, timeout, interval=0.2, what="job %d to be %s" % (job, states))


def read_sse(port, path, token=None, timeout=60, last_event_id=None, headers=None):
    h = dict(headers or {})
    h["Accept"] = "text/event-stream"
    if token:
        h["Authorization"] = "Bearer " + token
    if last_event_id is not None:
        h["Last-Event-ID"] = str(last_event_id)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=h)
        r = conn.getresponse()
        if r.status != 200:
            raise AssertionError("SSE %s: %d %s" % (path, r.status, r.read()[:300]))
        ev_id, kind, data = None, "message", []
        while True:
            try:
                line = r.readline()  # de-chunks
            except (socket.timeout, TimeoutError):
                raise AssertionError("no event on %s for %ss" % (path, timeout))
            if not line:
                return  # the server ended the stream
            line = line.decode().rstrip("\r\n")
            if line == "":
                if data:
                    yield (int(ev_id) if ev_id is not None else None, kind, "\n".join(data))
                ev_id, kind, data = None, "message", []
            elif line.startswith(":"):
                continue
            else:
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "id":
                    ev_id = value
                elif field == "event":
                    kind = value
                elif field == "data":
                    data.append(value)
    finally:
        conn.close()


def quick_job(dataset, name="quick", **over):
    """A lenet job that trains in a few seconds on 2 cores."""
    job = {"name": name, "dataset": dataset, "model": "lenet", "device": "cpu",
           "iterations": 300, "train-limit": 2000, "test-limit": 500, "eval-every": 100,
           "log-every": 10}
    job.update(over)
    return job
