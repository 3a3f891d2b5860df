"""Fixtures for `myelin serve-model` tests: a LeNet trained for a few iterations on a slice of
Fashion-MNIST, a bundle of it, test images as PNG files, and servers started on free ports."""
import gzip
import json
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import zlib

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "server"))
from harness import FASHION, ROOT, Unavailable, find_binary  # noqa: E402

LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
          "Bag", "Ankle boot"]


def binary():
    try:
        return find_binary()
    except Unavailable as e:
        pytest.skip(str(e))


def gray_png(pixels, w, h):
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
    rows = b"".join(b"\x00" + bytes(pixels[y * w:(y + 1) * w]) for y in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def test_images(count):
    """The first `count` Fashion-MNIST test images as lists of 784 pixel values (0-255)."""
    with gzip.open(os.path.join(FASHION, "t10k-images-idx3-ubyte.gz")) as f:
        f.read(16)
        data = f.read(784 * count)
    return [list(data[i * 784:(i + 1) * 784]) for i in range(count)]


@pytest.fixture(scope="session")
def model(tmp_path_factory):
    """{'run': run dir, 'bundle': lenet.tar.gz, 'pngs': [paths], 'pixels': [[784 ints]]}."""
    exe = binary()
    tmp = tmp_path_factory.mktemp("serve-model")
    run = tmp / "run"
    subprocess.run([exe, "train", "--model", "lenet", "--data", "fashion-mnist", "--iterations",
                    "60", "--batch", "64", "--train-limit", "4000", "--test-limit", "500",
                    "--threads", "2", "--quiet", "--out", str(run)], check=True, timeout=120)
    staged = tmp / "bundle"
    staged.mkdir()
    shutil.copy(os.path.join(ROOT, "models", "lenet.yaml"), staged / "network.yaml")
    shutil.copy(run / "weights.safetensors", staged / "weights.safetensors")
    (staged / "labels.txt").write_text("\n".join(LABELS) + "\n")
    bundle = tmp / "lenet.tar.gz"
    with tarfile.open(bundle, "w:gz") as t:
        for name in ("network.yaml", "weights.safetensors", "labels.txt"):
            t.add(staged / name, arcname=name)
    pixels = test_images(16)
    pngs = []
    for i, p in enumerate(pixels):
        path = tmp / ("test-%d.png" % i)
        path.write_bytes(gray_png(p, 28, 28))
        pngs.append(str(path))
    return {"run": str(run), "bundle": str(bundle), "pngs": pngs, "pixels": pixels, "tmp": tmp}


class ModelServer:
    """A `myelin serve-model` child on a free port (it prints its URL when ready)."""

    def __init__(self, model, *flags):
        self.args = [binary(), "serve-model", model, "--port", "0", "--threads", "1"] + list(flags)
        self.proc = None

    def __enter__(self):
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        for line in self.proc.stdout:
            if "serving at" in line:
                url = line.split("serving at", 1)[1].strip()
                self.host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
                self.port = int(port)
                return self
        raise AssertionError("myelin serve-model exited before serving: " +
                             self.proc.stderr.read())

    def __exit__(self, *exc):
        self.stop()

    def stop(self, timeout=30):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def request(self, method, path, data=None, ctype=None, headers=None):
        """-> (status, parsed JSON or text)."""
        import http.client
        h = dict(headers or {})
        if ctype:
            h["Content-Type"] = ctype
        if method == "POST" and data is None:
            data = b""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, body=data, headers=h)
            r = conn.getresponse()
            body = r.read()
            if r.headers.get("Content-Type", "").startswith("application/json"):
                return r.status, json.loads(body)
            return r.status, body.decode()
        finally:
            conn.close()

    def ok(self, method, path, data=None, ctype=None, headers=None):
        status, body = self.request(method, path, data, ctype, headers)
        assert status == 200, (method, path, status, body)
        return body
