#!/usr/bin/env python3
"""The peer of `myelin serve-model` where onnxruntime comes as a Python package (the GPU machine):
the same protocol and batching policy as bench/ort_server.mjs.

    python3 bench/ort_server.py MODEL.onnx [--port 8001] [--max-batch 32] [--max-delay-ms 2]
                                [--provider cpu|cuda] [--threads 0]

POST /v1/predict takes float32 [n, C, H, W] (application/octet-stream, X-Shape optional) and
answers {"probabilities": [[...]], "top": [[...]]}; GET /v1/health {"status", "model", "input",
"classes"}. The oldest queued request waits until it is max-delay old for others, then up to
max-batch examples (whole requests) run as one batch on one InferenceSession.
"""
import argparse
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import onnxruntime as ort


class Batcher:
    def __init__(self, session, max_batch, max_delay):
        self.session, self.max_batch, self.max_delay = session, max_batch, max_delay
        self.input_name = session.get_inputs()[0].name
        self.queue = []
        self.changed = threading.Condition()
        threading.Thread(target=self.work, daemon=True).start()

    def run(self, x):
        item = {"x": x, "arrived": time.monotonic(), "done": threading.Event()}
        with self.changed:
            self.queue.append(item)
            self.changed.notify_all()
        item["done"].wait()
        if "error" in item:
            raise item["error"]
        return item["p"]

    def gather(self):
        with self.changed:
            self.changed.wait_for(lambda: self.queue)
            deadline = self.queue[0]["arrived"] + self.max_delay
            while True:
                queued = sum(len(i["x"]) for i in self.queue)
                left = deadline - time.monotonic()
                if queued >= self.max_batch or left <= 0:
                    break
                self.changed.wait(left)
            batch, n = [], 0
            while self.queue and (n == 0 or n + len(self.queue[0]["x"]) <= self.max_batch):
                n += len(self.queue[0]["x"])
                batch.append(self.queue.pop(0))
            return batch

    def work(self):
        while True:
            batch = self.gather()
            try:
                x = np.concatenate([i["x"] for i in batch])
                p = self.session.run(["probabilities"], {self.input_name: x})[0]
                row = 0
                for i in batch:
                    i["p"] = p[row:row + len(i["x"])]
                    row += len(i["x"])
            except Exception as e:  # every waiting request gets the failure
                for i in batch:
                    i["error"] = e
            for i in batch:
                i["done"].set()


def make_handler(batcher, health):
    example = int(np.prod(health["input"]))

    class Handler(BaseHTTPRequestHandler):
        disable_nagle_algorithm = True  # headers and body go out at once (no 40 ms delayed ACK)
        protocol_version = "HTTP/1.1"  # keep-alive, as the load generator expects

        def log_message(self, *args):
            pass

        def send(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path.split("?")[0] == "/v1/health":
                return self.send(200, health)
            self.send(404, {"error": "no such route", "status": 404})

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path.split("?")[0] != "/v1/predict":
                return self.send(404, {"error": "no such route", "status": 404})
            if self.headers.get("Content-Type") != "application/octet-stream":
                return self.send(415, {"error": "send application/octet-stream", "status": 415})
            if len(body) % 4 or not body or (len(body) // 4) % example:
                return self.send(400, {"error": "expected [N, %s] float32" % health["input"],
                                       "status": 400})
            x = np.frombuffer(body, dtype="<f4").reshape([-1] + health["input"])
            p = batcher.run(x)
            rows = p.tolist()
            top = [[{"label": int(k), "name": str(k), "probability": r[k]}
                    for k in np.argsort(-np.asarray(r), kind="stable")[:5]] for r in rows]
            self.send(200, {"probabilities": rows, "top": top})

    return Handler


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--port", type=int, default=8001)
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--max-delay-ms", type=float, default=2)
    ap.add_argument("--provider", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    so = ort.SessionOptions()
    if a.threads:
        so.intra_op_num_threads = a.threads
    providers = ["CUDAExecutionProvider"] if a.provider == "cuda" else ["CPUExecutionProvider"]
    if providers[0] not in ort.get_available_providers():  # onnxruntime would fall back to the CPU
        raise SystemExit("ort_server: this onnxruntime has no %s (it has %s)" %
                         (providers[0], ", ".join(ort.get_available_providers())))
    session = ort.InferenceSession(a.model, so, providers=providers)
    shape = session.get_inputs()[0].shape[1:]
    probe = session.run(["probabilities"], {session.get_inputs()[0].name:
                                            np.zeros([1] + shape, dtype=np.float32)})[0]
    health = {"status": "ready", "model": os.path.basename(a.model), "input": shape,
              "classes": int(probe.shape[1])}
    batcher = Batcher(session, a.max_batch, a.max_delay_ms / 1000)
    server = ThreadingHTTPServer(("127.0.0.1", a.port), make_handler(batcher, health))
    server.daemon_threads = True
    print("ort_server: %s (onnxruntime %s, %s), max batch %d\n  serving at "
          "http://127.0.0.1:%d/v1/" % (a.model, ort.__version__, session.get_providers()[0],
                                       a.max_batch, server.server_address[1]), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
