"""Datasets, uploads and the system route of `myelin serve`, against a real server.

Each module-level server runs with a small upload limit and an --allow-dir root holding small
generated image folders, so the tests are quick on a 2-core machine. Fashion-MNIST is built too
when Debian's package is installed.
"""
import io
import json
import os
import signal
import sqlite3
import struct
import tarfile
import time
import zipfile

import pytest

from harness import FASHION, Unavailable, png_bytes
import harness


def png_size(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:16]
    return struct.unpack(">II", data[16:24])  # width, height


def make_folder(root, classes=("cat", "dog", "fish"), per_class=8, size=(10, 14)):
    for k, name in enumerate(classes):
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for i in range(per_class):
            color = (40 * k + 20, 5 * i, 200 - 30 * k)
            with open(os.path.join(root, name, "%02d.png" % i), "wb") as f:
                f.write(png_bytes(size[1], size[0], color))
    return root


def file_part(data, filename="file.bin"):
    """An upload body: `data` as the multipart field `file`."""
    return harness.multipart({"file": (filename, data, "application/octet-stream")})


# ---- the server ----

class Server(harness.Server):
    """harness.Server with an --allow-dir root, a small upload limit and the calls below."""

    def __init__(self, tmp, max_upload_mb=1):
        allowed = os.path.join(tmp, "allowed")
        os.makedirs(allowed, exist_ok=True)
        super().__init__(tmp, "--allow-dir", allowed, "--max-upload-mb", str(max_upload_mb),
                         "--threads", "16")
        self.allowed = allowed
        try:
            self.start()
        except Unavailable as e:
            pytest.skip(str(e))

    def kill(self, sig=signal.SIGTERM):
        self.stop(sig)

    def call(self, method, path, body=None, raw=None, ctype=None, auth=True):
        status, headers, data = self.request(method, path, body, raw, ctype,
                                             token="default" if auth else None)
        return status, headers.get("Content-Type", ""), data

    def json(self, method, path, body=None, expect=200):
        status, ctype, data = self.call(method, path, body)
        assert status == expect, (status, data[:500])
        assert ctype.startswith("application/json"), ctype
        return json.loads(data)

    def error(self, method, path, body=None, raw=None, ctype=None, expect=400):
        """A 4xx JSON answer, after which the server still answers."""
        status, got_type, data = self.call(method, path, body, raw, ctype)
        assert status == expect, (status, data[:500])
        assert got_type.startswith("application/json"), got_type
        message = json.loads(data)["error"]
        assert message
        assert self.call("GET", "/api/v1/health", auth=False)[0] == 200
        return message

    def upload(self, data, filename="file.bin", expect=201):
        body, ctype = file_part(data, filename)
        status, _, out = self.call("POST", "/api/v1/uploads", raw=body, ctype=ctype)
        assert status == expect, (status, out[:500])
        return json.loads(out)

    def wait_built(self, dataset_id, timeout=180):
        deadline = time.time() + timeout
        while time.time() < deadline:
            d = self.json("GET", "/api/v1/datasets/%d" % dataset_id)
            if d["state"] != "building":
                return d
            assert 0 <= d["progress"] <= 1
            time.sleep(0.2)
        raise AssertionError("dataset %d still building after %ds" % (dataset_id, timeout))


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = Server(str(tmp_path_factory.mktemp("serve-datasets")))
    make_folder(os.path.join(s.allowed, "photos"))
    yield s
    s.kill()


@pytest.fixture(scope="module")
def folder_dataset(srv):
    d = srv.json("POST", "/api/v1/datasets",
                 {"name": "photos", "source": os.path.join(srv.allowed, "photos"),
                  "size": "12x16", "channels": 3, "resize": "squash", "validation": 25},
                 expect=201)
    assert d["state"] == "building"
    return srv.wait_built(d["id"])


# ---- datasets from a folder ----

def test_folder_dataset_is_described(srv, folder_dataset):
    d = folder_dataset
    assert d["state"] == "ready", d["error"]
    assert d["progress"] == 1
    assert d["shape"] == [3, 12, 16]
    assert [c["name"] for c in d["classes"]] == ["cat", "dog", "fish"]
    assert d["examples"]["train"] + d["examples"]["test"] == 24
    assert d["examples"]["test"] > 0
    for c in d["classes"]:
        assert c["train"] + c["test"] == 8
    assert d["bytes"] > 0
    assert d["source"] == os.path.join(srv.allowed, "photos")
    assert any(x["id"] == d["id"] for x in srv.json("GET", "/api/v1/datasets"))
    assert os.path.isdir(os.path.join(srv.data, "datasets", str(d["id"]), "store"))


def test_dataset_pictures_are_pngs_of_the_right_size(srv, folder_dataset):
    base = "/api/v1/datasets/%d" % folder_dataset["id"]
    status, ctype, data = srv.call("GET", base + "/mean.png")
    assert (status, ctype) == (200, "image/png")
    assert png_size(data) == (16, 12)
    status, _, data = srv.call("GET", base + "/examples.png?class=1&count=4&columns=2&seed=3")
    assert status == 200
    assert png_size(data) == (2 * 16 + 1, 2 * 12 + 1)  # 1 pixel between examples
    status, _, data = srv.call("GET", base + "/examples.png?split=test")
    assert status == 200 and png_size(data)[0] > 0
    status, _, data = srv.call("GET", base + "/examples/0.png?split=test&scale=2")
    assert status == 200
    assert png_size(data) == (32, 24)


def test_preview_draws_the_source_as_it_would_be_made(srv):
    body = {"source": os.path.join(srv.allowed, "photos"), "size": "8x8", "channels": 1,
            "count": 4}
    status, ctype, data = srv.call("POST", "/api/v1/datasets/preview", body)
    assert (status, ctype) == (200, "image/png"), data[:300]
    assert png_size(data) == (2 * 8 + 1, 2 * 8 + 1)


def test_picture_requests_with_bad_parameters(srv, folder_dataset):
    base = "/api/v1/datasets/%d" % folder_dataset["id"]
    srv.error("GET", base + "/examples.png?class=7", expect=400)
    srv.error("GET", base + "/examples.png?count=many", expect=400)
    srv.error("GET", base + "/examples.png?split=holdout", expect=400)
    srv.error("GET", base + "/examples/100000.png", expect=404)
    srv.error("GET", base + "/examples/0.png?scale=1000", expect=400)


def test_a_broken_folder_fails_naming_its_file(srv):
    broken = os.path.join(srv.allowed, "broken")
    os.makedirs(os.path.join(broken, "a"))
    with open(os.path.join(broken, "a", "x.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n truncated")
    d = srv.json("POST", "/api/v1/datasets", {"name": "broken", "source": broken}, expect=201)
    d = srv.wait_built(d["id"])
    assert d["state"] == "failed"
    assert "x.png" in d["error"]
    srv.error("GET", "/api/v1/datasets/%d/mean.png" % d["id"], expect=409)


# ---- uploads and datasets from archives ----

def tar_gz_of(folder, wrap="photos"):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        t.add(folder, arcname=wrap)
    return buf.getvalue()


def zip_of(folder):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:  # classes at the top: no wrapping folder
        for d, _, files in os.walk(folder):
            for f in files:
                z.write(os.path.join(d, f), os.path.relpath(os.path.join(d, f), folder))
    return buf.getvalue()


@pytest.mark.parametrize("pack,name", [(tar_gz_of, "photos.tar.gz"), (zip_of, "photos.zip")])
def test_dataset_from_an_uploaded_archive(srv, pack, name):
    up = srv.upload(pack(os.path.join(srv.allowed, "photos")), name)
    assert up["kind"] == "archive" and up["name"] == name and up["bytes"] > 0
    d = srv.json("POST", "/api/v1/datasets", {"name": "up", "source": up["id"], "size": "8x8",
                                              "channels": 1, "validation": 0}, expect=201)
    d = srv.wait_built(d["id"])
    assert d["state"] == "ready", d["error"]
    assert d["shape"] == [1, 8, 8]
    assert d["source"] == up["id"]
    assert [c["name"] for c in d["classes"]] == ["cat", "dog", "fish"]
    assert d["examples"]["train"] == 24


def test_upload_names_are_never_paths(srv):
    up = srv.upload(png_bytes(4, 4, (1, 2, 3)), "../../../../tmp/evil.png")
    assert up["kind"] == "image" and up["name"] == "evil.png"
    assert not os.path.exists("/tmp/evil.png") or os.path.getsize("/tmp/evil.png") != up["bytes"]
    files = os.listdir(os.path.join(srv.data, "uploads"))
    assert "evil.png" not in files


def test_bad_uploads(srv):
    body, ctype = file_part(b"\x00\x00\x01\x00 not an icon", "favicon.ico")
    assert "neither an image" in srv.error("POST", "/api/v1/uploads", raw=body, ctype=ctype,
                                           expect=415)
    for corrupt in (b"PK\x03\x04" + os.urandom(300), b"\x1f\x8b\x08\x00" + os.urandom(300)):
        body, ctype = file_part(corrupt, "broken.zip")
        assert "archive" in srv.error("POST", "/api/v1/uploads", raw=body, ctype=ctype)
    big = b"\x89PNG\r\n\x1a\n" + b"\x00" * (1 << 20)  # just over the 1 MB limit
    body, ctype = file_part(big, "big.png")
    srv.error("POST", "/api/v1/uploads", raw=body, ctype=ctype, expect=413)
    body, ctype = file_part(big * 3, "bigger.png")  # over what httplib reads at all
    srv.error("POST", "/api/v1/uploads", raw=body, ctype=ctype, expect=413)
    srv.error("POST", "/api/v1/uploads", body={"file": "x"})


def test_archive_with_an_escaping_entry_is_refused(srv):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        data = png_bytes(4, 4, (9, 9, 9))
        info = tarfile.TarInfo("../escape/cat/x.png")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    body, ctype = file_part(buf.getvalue(), "evil.tar.gz")
    srv.error("POST", "/api/v1/uploads", raw=body, ctype=ctype)
    assert not os.path.exists(os.path.join(srv.data, "escape"))


# ---- bad create requests ----

def test_bad_create_requests(srv):
    photos = os.path.join(srv.allowed, "photos")
    image = srv.upload(png_bytes(4, 4, (1, 2, 3)), "one.png")
    cases = [
        ({"name": "x", "source": "cifar-100"}, 400),
        ({"name": "x"}, 400),
        ({"source": photos}, 400),
        ({"name": "x", "source": photos, "size": "12by12"}, 400),
        ({"name": "x", "source": photos, "size": "0x5"}, 400),
        ({"name": "x", "source": photos, "size": 12}, 400),
        ({"name": "x", "source": photos, "channels": 2}, 400),
        ({"name": "x", "source": photos, "resize": "stretch"}, 400),
        ({"name": "x", "source": photos, "validation": 150}, 400),
        ({"name": "x", "source": "fashion-mnist", "size": "32x32"}, 400),
        ({"name": "x", "source": "relative/photos"}, 400),
        ({"name": "x", "source": srv.allowed + "/../../etc"}, 403),
        ({"name": "x", "source": "/etc"}, 403),
        ({"name": "x", "source": srv.allowed + "/missing"}, 404),
        ({"name": "x", "source": 99999}, 404),
        ({"name": "x", "source": image["id"]}, 400),
        ({"name": "x", "source": [1, 2]}, 400),
    ]
    for body, status in cases:
        srv.error("POST", "/api/v1/datasets", body, expect=status)
    for body, status in cases[3:]:  # the preview checks the same fields (no name)
        srv.error("POST", "/api/v1/datasets/preview", dict(body, name=None), expect=status)
    srv.error("POST", "/api/v1/datasets", raw=b"{\"name\": ", ctype="application/json")


def test_symlink_escapes_are_refused(srv):
    os.symlink("/etc", os.path.join(srv.allowed, "etc-link"))
    assert "outside" in srv.error("POST", "/api/v1/datasets",
                                  {"name": "x", "source": srv.allowed + "/etc-link"}, expect=403)
    # A link inside a class folder that leads out of the roots.
    outside = os.path.join(os.path.dirname(srv.allowed), "outside")
    make_folder(outside, classes=("secret",), per_class=1)
    inner = make_folder(os.path.join(srv.allowed, "inner"), per_class=2)
    os.symlink(os.path.join(outside, "secret", "00.png"), os.path.join(inner, "cat", "zz.png"))
    srv.error("POST", "/api/v1/datasets", {"name": "x", "source": inner}, expect=403)
    srv.error("POST", "/api/v1/datasets/preview", {"source": inner}, expect=403)
    # A list file naming an image outside the roots.
    listing = os.path.join(srv.allowed, "list.txt")
    with open(listing, "w") as f:
        f.write("inner/dog/00.png 0\n%s 1\n" % os.path.join(outside, "secret", "00.png"))
    srv.error("POST", "/api/v1/datasets", {"name": "x", "source": listing}, expect=403)
    # Links back up the tree would make the folder reader walk 2^32 folders.
    loop = make_folder(os.path.join(srv.allowed, "loop"), per_class=1)
    os.symlink("..", os.path.join(loop, "cat", "up1"))
    os.makedirs(os.path.join(loop, "dog", "sub"))
    os.symlink("../..", os.path.join(loop, "dog", "sub", "up2"))
    assert "loop" in srv.error("POST", "/api/v1/datasets", {"name": "x", "source": loop})


def test_unknown_ids(srv):
    for method, path in [("GET", "/api/v1/datasets/99999"), ("DELETE", "/api/v1/datasets/99999"),
                         ("GET", "/api/v1/datasets/99999/mean.png"),
                         ("GET", "/api/v1/datasets/99999/examples.png"),
                         ("GET", "/api/v1/datasets/99999/examples/3.png")]:
        srv.error(method, path, expect=404)


def test_calls_need_the_token(srv):
    status, _, _ = srv.call("GET", "/api/v1/datasets", auth=False)
    assert status == 401


# ---- delete ----

def test_delete_is_refused_while_a_job_uses_the_dataset(srv):
    d = srv.json("POST", "/api/v1/datasets",
                 {"name": "doomed", "source": os.path.join(srv.allowed, "photos")}, expect=201)
    d = srv.wait_built(d["id"])
    db = sqlite3.connect(os.path.join(srv.data, "myelin.db"), timeout=30)
    with db:
        db.execute("INSERT INTO jobs(name, owner, spec, state, dataset, run_dir, created) "
                   "VALUES('j', 0, '{}', 'done', ?, '/nonexistent', 0)", (d["id"],))
        job = db.execute("SELECT max(id) FROM jobs").fetchone()[0]
    message = srv.error("DELETE", "/api/v1/datasets/%d" % d["id"], expect=409)
    assert str(job) in message
    with db:
        db.execute("DELETE FROM jobs WHERE id = ?", (job,))
    db.close()
    assert srv.json("DELETE", "/api/v1/datasets/%d" % d["id"])["deleted"]
    srv.error("GET", "/api/v1/datasets/%d" % d["id"], expect=404)
    assert not os.path.exists(os.path.join(srv.data, "datasets", str(d["id"])))


# ---- Fashion-MNIST, restarts, system ----

@pytest.mark.skipif(not os.path.isdir(FASHION), reason="dataset-fashion-mnist is not installed")
def test_fashion_mnist(srv):
    d = srv.json("POST", "/api/v1/datasets", {"name": "fm", "source": "fashion-mnist"},
                 expect=201)
    d = srv.wait_built(d["id"])
    assert d["state"] == "ready", d["error"]
    assert d["shape"] == [1, 28, 28]
    assert d["examples"] == {"train": 60000, "test": 10000}
    assert len(d["classes"]) == 10 and all(c["train"] == 6000 for c in d["classes"])
    status, _, data = srv.call("GET", "/api/v1/datasets/%d/examples.png?class=3&count=10"
                                      "&columns=5" % d["id"])
    assert status == 200 and png_size(data) == (5 * 28 + 4, 2 * 28 + 1)


def test_datasets_left_building_are_built_at_start(tmp_path):
    s = Server(str(tmp_path))
    try:
        make_folder(os.path.join(s.allowed, "photos"), per_class=3)
        d = s.json("POST", "/api/v1/datasets",
                   {"name": "again", "source": os.path.join(s.allowed, "photos")}, expect=201)
        s.wait_built(d["id"])
        s.kill(signal.SIGKILL)
        # As if the server had been killed mid-build: the row says building, the store is half.
        db = sqlite3.connect(os.path.join(s.data, "myelin.db"), timeout=30)
        with db:
            db.execute("UPDATE datasets SET state = 'building', progress = 0.4, info = NULL "
                       "WHERE id = ?", (d["id"],))
        db.close()
        os.remove(os.path.join(s.data, "datasets", str(d["id"]), "store", "train.mstore"))
        s.start()
        d = s.wait_built(d["id"])
        assert d["state"] == "ready", d["error"]
        assert d["examples"]["train"] + d["examples"]["test"] == 9
    finally:
        s.kill()


def test_system(srv):
    s = srv.json("GET", "/api/v1/system")
    assert s["cpu"]["cores"] >= 1
    assert 0 <= s["cpu"]["load"] <= 1
    assert s["cpu"]["memory_total"] >= s["cpu"]["memory_available"] > 0
    assert isinstance(s["gpus"], list)
