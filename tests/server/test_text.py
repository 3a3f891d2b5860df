"""Text datasets and text networks in `myelin serve`, against a real server.

A small generated corpus (a few thousand characters) under an --allow-dir root: text datasets
made from a server file, an uploaded text file and an uploaded archive of text files, read back
(facts, excerpts), refused where they make no sense (pictures, image networks, binary files),
and a short char-lstm job on one whose samples arrive as metrics events.
"""
import io
import json
import os
import random
import tarfile

import pytest

from harness import png_bytes, wait_for
from test_datasets import Server, file_part, make_folder

WORDS = ("the cat sat on a mat and the dog ran to the red door while a bird sang "
         "over old green hills near quiet water").split()


def corpus(lines=120, seed=1):
    """Sentences of common words, one per line: about 5000 characters."""
    rng = random.Random(seed)
    out = []
    for _ in range(lines):
        words = [rng.choice(WORDS) for _ in range(rng.randint(4, 9))]
        out.append(" ".join(words).capitalize() + rng.choice(".!?"))
    return "\n".join(out) + "\n"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = Server(str(tmp_path_factory.mktemp("serve-text")))
    with open(os.path.join(s.allowed, "story.txt"), "w") as f:
        f.write(corpus())
    yield s
    s.kill()


@pytest.fixture(scope="module")
def story(srv):
    d = srv.json("POST", "/api/v1/datasets",
                 {"name": "story", "source": os.path.join(srv.allowed, "story.txt"),
                  "text": "char", "validation": 10}, expect=201)
    assert d["state"] == "building"
    d = srv.wait_built(d["id"])
    assert d["state"] == "ready", d["error"]
    return d


def test_a_text_dataset_is_described(srv, story):
    text = corpus()
    t = story["text"]
    assert story["kind"] == "text"
    assert story["options"] == {"text": "char", "validation": 10}
    assert t["level"] == "char" and t["files"] == 1
    assert t["vocabulary_size"] == len(set(text))
    assert t["train_tokens"] + t["validation_tokens"] == len(text)
    assert t["validation_tokens"] == len(text) // 10
    # The most frequent symbols first, counted over the whole text.
    counts = [s["count"] for s in t["symbols"]]
    assert counts == sorted(counts, reverse=True)
    assert t["symbols"][0] == {"symbol": " ", "count": text.count(" ")}
    assert {"symbol": "\n", "count": text.count("\n")} in t["symbols"]
    assert story["shape"] is None and story["examples"] == {} and story["classes"] == []
    assert story["bytes"] > 4 * len(text)
    listed = [d for d in srv.json("GET", "/api/v1/datasets") if d["id"] == story["id"]]
    assert listed[0]["kind"] == "text"


def test_excerpts_of_the_text(srv, story):
    text = corpus()
    base = "/api/v1/datasets/%d/text" % story["id"]
    e = srv.json("GET", base + "?length=60")
    assert e == {"split": "train", "offset": 0, "length": 60,
                 "tokens": story["text"]["train_tokens"], "text": text[:60]}
    # Past the start, an excerpt begins a line.
    e = srv.json("GET", base + "?offset=100&length=200")
    assert e["offset"] > 100 and text[e["offset"] - 1] == "\n"
    assert e["text"] == text[e["offset"]:100 + 200]
    v = srv.json("GET", base + "?split=validation&length=20000")
    assert v["split"] == "validation" and v["text"] == text[-story["text"]["validation_tokens"]:]
    assert srv.json("GET", base + "?split=test&length=5")["split"] == "validation"
    total = story["text"]["train_tokens"]
    assert srv.json("GET", base + "?offset=%d" % total)["text"] == ""
    srv.error("GET", base + "?offset=%d" % (total + 1), expect=400)
    srv.error("GET", base + "?length=0", expect=400)
    srv.error("GET", base + "?split=holdout", expect=400)


def test_pictures_of_a_text_dataset_are_refused(srv, story):
    base = "/api/v1/datasets/%d" % story["id"]
    for path in ("/mean.png", "/examples.png", "/examples/0.png"):
        assert "text" in srv.error("GET", base + path, expect=400)
    assert "preview" in srv.error("POST", "/api/v1/datasets/preview",
                                  {"source": os.path.join(srv.allowed, "story.txt"),
                                   "text": "char"})
    images = srv.json("POST", "/api/v1/datasets",
                      {"name": "photos", "source": make_folder(os.path.join(srv.allowed,
                                                                            "photos"))},
                      expect=201)
    images = srv.wait_built(images["id"])
    assert images["kind"] == "image" and images["text"] is None
    srv.error("GET", "/api/v1/datasets/%d/text" % images["id"], expect=400)


def test_a_word_dataset_from_an_uploaded_text_file(srv):
    text = corpus(lines=40, seed=2)
    up = srv.upload(text.encode(), "story.txt")
    assert up["kind"] == "text" and up["bytes"] == len(text.encode())
    d = srv.json("POST", "/api/v1/datasets",
                 {"name": "words", "source": up["id"], "text": "word"}, expect=201)
    d = srv.wait_built(d["id"])
    assert d["state"] == "ready", d["error"]
    assert d["source"] == up["id"] and d["text"]["level"] == "word"
    # Words, single spaces, newlines and the end marks.
    assert d["text"]["vocabulary_size"] <= len(WORDS) * 2 + 5
    assert d["text"]["validation_tokens"] > 0
    got = srv.json("GET", "/api/v1/datasets/%d/text?length=20000" % d["id"])["text"]
    assert text.startswith(got)
    # A text file makes no image dataset.
    assert "text" in srv.error("POST", "/api/v1/datasets", {"name": "x", "source": up["id"]})


def test_a_char_dataset_from_an_archive_of_text_files(srv):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for k in range(3):
            data = corpus(lines=10, seed=10 + k).encode()
            info = tarfile.TarInfo("books/part%d.txt" % k)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    up = srv.upload(buf.getvalue(), "books.tar.gz")
    assert up["kind"] == "archive"
    d = srv.json("POST", "/api/v1/datasets",
                 {"name": "books", "source": up["id"], "text": "char"}, expect=201)
    d = srv.wait_built(d["id"])
    assert d["state"] == "ready", d["error"]
    assert d["text"]["files"] == 3


def test_binary_and_bad_text_sources(srv):
    allowed = srv.allowed
    blob = os.path.join(allowed, "blob.bin")
    with open(blob, "wb") as f:
        f.write(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 8)
    assert "binary" in srv.error("POST", "/api/v1/datasets",
                                 {"name": "x", "source": blob, "text": "char"})
    latin1 = os.path.join(allowed, "latin1.txt")
    with open(latin1, "wb") as f:
        f.write("Café au lait\n".encode("latin-1"))
    assert "UTF-8" in srv.error("POST", "/api/v1/datasets",
                                {"name": "x", "source": latin1, "text": "char"})
    empty = os.path.join(allowed, "empty.txt")
    open(empty, "w").close()
    assert "empty" in srv.error("POST", "/api/v1/datasets",
                                {"name": "x", "source": empty, "text": "char"})
    # A binary upload is neither image, archive nor text.
    body, ctype = file_part(b"\x00\x01\x02\x03" * 100, "blob.bin")
    assert "text" in srv.error("POST", "/api/v1/uploads", raw=body, ctype=ctype, expect=415)
    image = srv.upload(png_bytes(4, 4, (1, 2, 3)), "one.png")
    story = os.path.join(allowed, "story.txt")
    cases = [
        {"name": "x", "source": story, "text": "byte"},
        {"name": "x", "source": story, "text": True},
        {"name": "x", "source": story, "text": "char", "size": "8x8"},
        {"name": "x", "source": story, "text": "char", "channels": 1},
        {"name": "x", "source": story, "text": "char", "validation": 0},
        {"name": "x", "source": story, "text": "char", "validation": 60},
        {"name": "x", "source": "fashion-mnist", "text": "char"},
        {"name": "x", "source": image["id"], "text": "char"},
    ]
    for body in cases:
        srv.error("POST", "/api/v1/datasets", body)
    srv.error("POST", "/api/v1/datasets", {"name": "x", "source": "/etc/passwd", "text": "char"},
              expect=403)


def test_bad_text_past_the_first_bytes_fails_the_build(srv):
    folder = os.path.join(srv.allowed, "late")
    os.makedirs(folder)
    with open(os.path.join(folder, "a.txt"), "wb") as f:
        f.write(corpus().encode() * 20 + b"\xff\xfe tail\n")  # past the 64 KiB checked at once
    d = srv.json("POST", "/api/v1/datasets", {"name": "late", "source": folder, "text": "word"},
                 expect=201)
    d = srv.wait_built(d["id"])
    assert d["state"] == "failed"
    assert "a.txt" in d["error"] and "UTF-8" in d["error"]
    only_binary = os.path.join(srv.allowed, "binaries")
    os.makedirs(only_binary)
    with open(os.path.join(only_binary, "x.dat"), "wb") as f:
        f.write(b"\x00" * 64)
    d = srv.json("POST", "/api/v1/datasets",
                 {"name": "bin", "source": only_binary, "text": "char"}, expect=201)
    d = srv.wait_built(d["id"])
    assert d["state"] == "failed" and "no text" in d["error"]
    assert srv.call("GET", "/api/v1/health", auth=False)[0] == 200


# ---- text networks ----

def test_networks_say_what_they_read(srv, story):
    nets = {n["name"]: n for n in srv.json("GET", "/api/v1/networks")["networks"]}
    assert nets["char-lstm"]["input_type"] == "tokens"
    assert nets["lenet"]["input_type"] == "image"
    v = srv.json("POST", "/api/v1/networks/validate",
                 {"text": nets["char-lstm"]["text"], "dataset": story["id"]})
    assert v["valid"], v
    assert v["network"]["classes"] == story["text"]["vocabulary_size"]
    v = srv.json("POST", "/api/v1/networks/validate",
                 {"text": nets["lenet"]["text"], "dataset": story["id"]})
    assert not v["valid"] and "text" in v["errors"][0]["message"]


def test_a_network_must_read_the_datasets_kind(srv, story):
    photos = [d for d in srv.json("GET", "/api/v1/datasets") if d["kind"] == "image"]
    if not photos:
        photos = [srv.wait_built(srv.json("POST", "/api/v1/datasets", {
            "name": "photos2", "source": make_folder(os.path.join(srv.allowed, "photos2"))},
            expect=201)["id"])]
    assert "char-lstm" in srv.error("POST", "/api/v1/jobs",
                                    {"dataset": story["id"], "model": "lenet"})
    assert "images" in srv.error("POST", "/api/v1/jobs",
                                 {"dataset": photos[0]["id"], "model": "char-lstm"})


def test_a_char_lstm_job_samples_text_as_it_trains(srv, story):
    job = srv.json("POST", "/api/v1/jobs",
                   {"dataset": story["id"], "model": "char-lstm", "name": "story lstm",
                    "iterations": 6, "batch": 2, "eval-every": 3, "log-every": 1,
                    "eval-batch": 2, "threads": 2}, expect=201)["id"]

    def ended():
        j = srv.json("GET", "/api/v1/jobs/%d" % job)
        return j if j["state"] in ("done", "failed", "aborted") else None

    j = wait_for(ended, 300, interval=0.5, what="the char-lstm job")
    assert j["state"] == "done", j["error"]
    m = j["metrics"]
    assert m["tokens_per_second"] > 0
    assert 0 < m["bits_per_symbol"] < 10 and m["best_bits_per_symbol"] <= m["bits_per_symbol"]
    events = srv.json("GET", "/api/v1/jobs/%d/metrics" % job)["events"]
    tests = [e for e in events if e["event"] == "test"]
    samples = [e for e in events if e["event"] == "sample"]
    assert [e["iter"] for e in tests] == [3, 6]
    assert [e["iter"] for e in samples] == [3, 6]
    symbols = set(corpus())
    for s in samples:
        assert s["text"] and set(s["text"]) <= symbols
    # The network it ran is fitted to the dataset's vocabulary.
    net = srv.json("GET", "/api/v1/jobs/%d/network" % job)["network"]
    assert net["classes"] == story["text"]["vocabulary_size"]
    # A text model classifies no images.
    body, ctype = harness_image()
    status, _, data = srv.call("POST", "/api/v1/jobs/%d/classify" % job, raw=body, ctype=ctype)
    assert status == 400 and "text" in json.loads(data)["error"]


def harness_image():
    import harness
    return harness.multipart({"image": ("x.png", png_bytes(8, 8, (1, 2, 3)), "image/png")})
