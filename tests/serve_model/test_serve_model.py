"""`myelin serve-model` against a real server on a short LeNet run: answers equal `myelin classify`
and each other across input formats, concurrent requests are batched and each gets its own
answer, bad requests get 4xx JSON while the server keeps serving."""
import json
import signal
import struct
import subprocess
import threading

from conftest import LABELS, ModelServer, binary

TOLERANCE = 1e-5


def as_floats(pixels):
    return [p / 255.0 for p in pixels]  # lenet.yaml's scale: 1/255


def binary_body(rows):
    return b"".join(struct.pack("<%df" % len(r), *r) for r in rows)


def predict_binary(s, rows, shape=True):
    headers = {"X-Shape": "%d,1,28,28" % len(rows)} if shape else {}
    return s.ok("POST", "/v1/predict", binary_body(rows), "application/octet-stream", headers)


def assert_close(a, b, what):
    assert len(a) == len(b), what
    for x, y in zip(a, b):
        assert abs(x - y) <= TOLERANCE, "%s: %r vs %r" % (what, a, b)


def cli_classify(model, paths):
    out = subprocess.run([binary(), "classify", "--weights", model["run"], "--top", "10",
                          "--threads", "1", "--json"] + paths, check=True, capture_output=True,
                         text=True, timeout=60)
    return json.loads(out.stdout)


def test_classify_equals_myelin_classify(model):
    expected = cli_classify(model, model["pngs"][:2])
    with ModelServer(model["bundle"]) as s:
        png = open(model["pngs"][0], "rb").read()
        got = s.ok("POST", "/v1/classify?k=10", png, "image/png")["results"]
        assert len(got) == 1
        top, want = got[0]["top"], expected[0]["top"]
        assert [t["label"] for t in top][0] == want[0]["label"]
        assert top[0]["name"] == LABELS[top[0]["label"]]  # names from the bundle's labels.txt
        by_label = {t["label"]: t["probability"] for t in want}
        for t in top:
            assert abs(t["probability"] - by_label[t["label"]]) <= TOLERANCE, (top, want)
        # Two files in one multipart request: one result each, the same as the CLI's.
        from harness import multipart
        body, ctype = multipart({"a": ("a.png", png, "image/png"),
                                 "b": ("b.png", open(model["pngs"][1], "rb").read(),
                                       "image/png")})
        both = s.ok("POST", "/v1/classify?k=1", body, ctype)["results"]
        assert [r["image"] for r in both] == ["a.png", "b.png"]
        assert [r["top"][0]["label"] for r in both] == [e["top"][0]["label"] for e in expected]
        assert len(both[0]["top"]) == 1


def test_predict_json_and_binary_equal_classify(model):
    rows = [as_floats(p) for p in model["pixels"][:3]]
    with ModelServer(model["run"]) as s:  # a run directory serves too
        from_images = [s.ok("POST", "/v1/classify?k=10", open(p, "rb").read(), "image/png")
                       ["results"][0]["top"] for p in model["pngs"][:3]]
        nested = [[[r[y * 28:(y + 1) * 28] for y in range(28)]] for r in rows]
        as_json = s.ok("POST", "/v1/predict?k=2", json.dumps(
            {"inputs": nested, "shape": [3, 1, 28, 28]}), "application/json")
        flat = s.ok("POST", "/v1/predict", json.dumps({"inputs": sum(rows, [])}),
                    "application/json")
        with_shape = predict_binary(s, rows)
        without_shape = predict_binary(s, rows, shape=False)
    for i in range(3):
        image_p = {t["label"]: t["probability"] for t in from_images[i]}
        want = [image_p[k] for k in range(10)]
        for answer in (as_json, flat, with_shape, without_shape):
            assert_close(answer["probabilities"][i], want, "example %d" % i)
        assert len(as_json["top"][i]) == 2
        assert as_json["top"][i][0]["label"] == from_images[i][0]["label"]
        assert abs(sum(as_json["probabilities"][i]) - 1) < 1e-4


def concurrent(s, rows, requests_per_thread=1):
    """Sends each row from its own thread at once; -> their probabilities, in row order."""
    answers, failures = [None] * len(rows), []
    start = threading.Barrier(len(rows))

    def send(i):
        start.wait()
        try:
            for _ in range(requests_per_thread):
                answers[i] = predict_binary(s, [rows[i]])["probabilities"][0]
        except Exception as e:  # reported by the test's thread, with what went wrong
            failures.append("request %d: %r" % (i, e))
    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(rows))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures
    return answers


def test_concurrent_requests_are_batched_and_get_their_own_answers(model):
    rows = [as_floats(p) for p in model["pixels"]]
    with ModelServer(model["bundle"], "--max-batch", "8", "--max-delay-ms", "50") as s:
        alone = [predict_binary(s, [r])["probabilities"][0] for r in rows]
        before = s.ok("GET", "/v1/metrics")
        together = concurrent(s, rows, requests_per_thread=3)
        metrics = s.ok("GET", "/v1/metrics")
        # One request larger than the largest batch runs in pieces, in order.
        many = predict_binary(s, rows[:11])["probabilities"]
    for i, (a, b) in enumerate(zip(alone, together)):
        assert_close(b, a, "request %d" % i)
    for i in range(11):
        assert_close(many[i], alone[i], "row %d of a request of 11" % i)
    assert len({tuple(round(x, 4) for x in a) for a in alone}) > 1  # the inputs differ
    sizes = {int(k): v for k, v in metrics["batch_sizes"].items()}
    assert max(sizes) > 1 and max(sizes) <= 8, sizes
    assert metrics["examples"] - before["examples"] == 3 * len(rows)
    assert metrics["batches"] - before["batches"] < 3 * len(rows)


def test_two_instances_share_the_load_with_the_same_answers(model):
    rows = [as_floats(p) for p in model["pixels"]]
    with ModelServer(model["bundle"], "--instances", "2", "--max-batch", "4",
                     "--max-delay-ms", "20") as s:
        alone = [predict_binary(s, [r])["probabilities"][0] for r in rows]
        together = concurrent(s, rows, requests_per_thread=3)
        info = s.ok("GET", "/v1/model")
        metrics = s.ok("GET", "/v1/metrics")
        prometheus = s.ok("GET", "/v1/metrics?format=prometheus")
    for i, (a, b) in enumerate(zip(alone, together)):
        assert_close(b, a, "request %d" % i)
    assert info["instances"] == 2
    per_instance = metrics["batches_by_instance"]
    assert len(per_instance) == 2 and sum(per_instance) == metrics["batches"]
    assert min(per_instance) > 0, per_instance  # while one instance runs, the other gathers
    assert 'myelin_instance_batches_total{instance="1"} %d' % per_instance[1] in prometheus


def test_batching_off_runs_one_example_at_a_time(model):
    rows = [as_floats(p) for p in model["pixels"][:8]]
    with ModelServer(model["bundle"], "--max-batch", "1", "--max-delay-ms", "0") as s:
        concurrent(s, rows, requests_per_thread=2)
        metrics = s.ok("GET", "/v1/metrics")
    assert metrics["batch_sizes"] == {"1": 16}
    assert metrics["requests_by_route"]["/v1/predict"] == 16


def test_bad_requests_get_4xx_and_the_server_keeps_serving(model):
    row = as_floats(model["pixels"][0])
    with ModelServer(model["bundle"], "--max-request-mb", "1") as s:
        cases = [
            ("/v1/classify", b"not an image at all", "image/png", {}, 400, "image"),
            ("/v1/classify", b"", "image/png", {}, 400, "empty"),
            ("/v1/classify", b"{}", "application/json", {}, 415, "Content-Type"),
            ("/v1/predict", binary_body([row]), "application/octet-stream",
             {"X-Shape": "1,3,28,28"}, 400, "[N, 1, 28, 28]"),
            ("/v1/predict", binary_body([row[:700]]), "application/octet-stream", {}, 400,
             "784"),
            ("/v1/predict", b"\x00\x00\x80", "application/octet-stream", {}, 400, "multiple of 4"),
            ("/v1/predict", b'{"inputs": [1, 2', "application/json", {}, 400, "malformed JSON"),
            ("/v1/predict", json.dumps({"inputs": ["a"] * 784}), "application/json", {}, 400,
             "numbers"),
            ("/v1/predict", json.dumps({"inputs": row, "shape": [2, 1, 28, 28]}),
             "application/json", {}, 400, "holds"),
            ("/v1/predict", b"x", "text/plain", {}, 415, "Content-Type"),
            ("/v1/predict?k=zero", binary_body([row]), "application/octet-stream", {}, 400, "k"),
            ("/v1/predict", b"\x00" * (2 << 20), "application/octet-stream", {}, 413, "larger"),
        ]
        for path, data, ctype, headers, status, words in cases:
            got, body = s.request("POST", path, data, ctype, headers)
            assert got == status, (path, ctype, got, body)
            assert words in body["error"] and body["status"] == status, body
        assert s.request("GET", "/v1/nothing")[0] == 404
        assert s.ok("GET", "/v1/health")["status"] == "ready"
        assert len(predict_binary(s, [row])["probabilities"][0]) == 10
        statuses = s.ok("GET", "/v1/metrics")["responses_by_status"]
    assert statuses["400"] == 9 and statuses["415"] == 2 and statuses["413"] == 1, statuses


def test_health_model_and_metrics(model):
    with ModelServer(model["bundle"], "--max-batch", "4") as s:
        health = s.ok("GET", "/v1/health")
        info = s.ok("GET", "/v1/model")
        predict_binary(s, [as_floats(model["pixels"][0])] * 3)
        metrics = s.ok("GET", "/v1/metrics")
        prometheus = s.ok("GET", "/v1/metrics?format=prometheus")
    assert health == {"status": "ready", "model": "lenet", "input": [1, 28, 28], "classes": 10}
    assert info["class_names"] == LABELS and info["max_batch"] == 4
    assert [l["type"] for l in info["layers"]][:1] == ["conv"]
    assert metrics["requests_by_route"]["/v1/predict"] == 1
    assert metrics["examples_by_route"]["/v1/predict"] == 3
    assert metrics["batch_sizes"] == {"3": 1}
    latency = metrics["latency_seconds"]
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"]
    assert sum(b["count"] for b in latency["buckets"]) == metrics["requests"]
    assert 'myelin_requests_total{route="/v1/predict"} 1' in prometheus
    assert 'myelin_batch_size_bucket{le="3"} 1' in prometheus
    assert "myelin_request_latency_seconds_count" in prometheus


def test_network_with_weights_serves(model):
    with ModelServer("lenet", "--weights", model["run"]) as s:
        assert s.ok("GET", "/v1/health")["model"] == "lenet"
        assert len(predict_binary(s, [as_floats(model["pixels"][0])])["probabilities"][0]) == 10


def test_sigterm_stops_cleanly_and_bad_models_are_refused(model, tmp_path):
    s = ModelServer(model["bundle"]).__enter__()
    s.proc.send_signal(signal.SIGINT)
    assert s.stop() == 0
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(open(model["bundle"], "rb").read()[:200])
    for path in (str(broken), str(tmp_path / "missing")):
        out = subprocess.run([binary(), "serve-model", path, "--port", "0"], capture_output=True,
                             text=True, timeout=60)
        assert out.returncode != 0 and path in out.stderr, out.stderr


def test_onnx_export_serves_the_same_probabilities(model, tmp_path):
    onnx = str(tmp_path / "lenet.onnx")
    out = subprocess.run([binary(), "export", "--weights", model["run"], "--format", "onnx",
                          "--out", onnx], capture_output=True, text=True, timeout=60)
    if out.returncode != 0 and "without ONNX" in out.stderr:
        import pytest
        pytest.skip("myelin built without ONNX: " + out.stderr.strip())
    assert out.returncode == 0, out.stderr
    rows = [as_floats(p) for p in model["pixels"][:4]]
    with ModelServer(model["bundle"]) as s:
        want = predict_binary(s, rows)["probabilities"]
    with ModelServer(onnx) as s:
        got = predict_binary(s, rows)["probabilities"]
        assert s.ok("GET", "/v1/model")["source"] == onnx
    for i in range(4):
        assert_close(got[i], want[i], "example %d" % i)
