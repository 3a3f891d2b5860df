"""Jobs of `myelin serve` against a real server, real SQLite and real `myelin train` children.

Every job here is a small LeNet on a slice of Fashion-MNIST (2000 train / 500 test images), so
each takes seconds on a 2-core machine; the whole file stays within a few minutes.
"""
import io
import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import threading
import time

import pytest

from harness import FASHION, Server, Unavailable, find_binary, is_png, multipart, quick_job, \
    read_sse, wait_for

pytestmark = pytest.mark.skipif(not os.path.isdir(FASHION),
                                reason="dataset-fashion-mnist is not installed")

FINAL = ("done", "failed", "aborted")


@pytest.fixture(scope="module")
def binary():
    try:
        return find_binary()
    except Unavailable as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def srv(tmp_path_factory, binary):
    with Server(tmp_path_factory.mktemp("serve-jobs"), "--threads", "32") as s:
        yield s


@pytest.fixture(scope="module")
def fm(srv):
    d = srv.dataset("fm", "fashion-mnist")
    assert d["state"] == "ready", d
    return d["id"]


def all_events(s, job, timeout=120, **kw):
    return list(s.events("/api/v1/jobs/%d/events" % job, timeout=timeout, **kw))


def metrics_of(events, kind=None):
    out = [(i, json.loads(d)) for i, k, d in events if k == "metrics"]
    return [(i, m) for i, m in out if kind is None or m["event"] == kind]


def history(s, job, kind="train"):
    """The job's metrics history (GET /metrics) of one kind, as iterations."""
    h = s.ok("GET", "/api/v1/jobs/%d/metrics" % job)["events"]
    return [e["iter"] for e in h if e["event"] == kind]


def file_lines(run_dir, kind="train"):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        lines = [json.loads(l) for l in f if l.strip()]
    return [l for l in lines if l["event"] == kind]


def assert_gapless(iters, every, last):
    assert iters == list(range(every, last + 1, every)), iters


def wait_iter(s, job, at_least, timeout=60):
    def reached():
        j = s.get_job(job)
        assert j["state"] not in FINAL, ("ended before iteration %d" % at_least, j)
        return j if j["metrics"].get("iter", 0) >= at_least else None
    return wait_for(reached, timeout, interval=0.05, what="job %d at iter %d" % (job, at_least))


def trainer_pids(run_dir):
    out = subprocess.run(["pgrep", "-f", run_dir], capture_output=True, text=True).stdout
    return [int(p) for p in out.split() if int(p) != os.getpid()]


# ---- a short job, start to finish, and what its model answers ----

@pytest.fixture(scope="module")
def done_job(srv, fm):
    job = srv.job(**quick_job(fm, "short"))
    j = srv.wait_job(job, timeout=180)
    assert j["state"] == "done", j
    return j


def test_short_job_events_in_order(srv, done_job):
    events = all_events(srv, done_job["id"])  # the job has ended: the stream closes by itself
    ids = [i for i, _, _ in events]
    assert ids == list(range(ids[0], ids[0] + len(ids))) and ids[0] == 1, ids  # no gaps
    kinds = [m["event"] for _, m in metrics_of(events)]
    assert kinds[0] == "start" and kinds[-1] == "end", kinds
    assert "train" in kinds and "test" in kinds
    assert kinds.index("train") < kinds.index("test") < kinds.index("end")
    assert_gapless([m["iter"] for _, m in metrics_of(events, "train")], 10, 300)
    states = [json.loads(d)["state"] for _, k, d in events if k == "state"]
    assert states[0] == "queued" and "running" in states and states[-1] == "done", states


def test_short_job_metrics(srv, done_job):
    m = done_job["metrics"]
    assert m["iter"] == 300 and m["finished"]
    assert 0.5 < m["test_accuracy"] <= 1.0, m
    assert m["train_loss"] > 0
    assert done_job["started"] <= done_job["finished"]
    assert done_job["error"] is None


def test_classify_an_example(srv, fm, done_job):
    status, _, png = srv.request("GET", "/api/v1/datasets/%d/examples/3.png?split=test" % fm)
    assert status == 200 and is_png(png)
    body, ctype = multipart({"image": ("x.png", png, "image/png")})
    top = srv.ok("POST", "/api/v1/jobs/%d/classify" % done_job["id"], raw=body,
                 ctype=ctype)["top"]
    assert len(top) == 5
    probs = [t["probability"] for t in top]
    assert probs == sorted(probs, reverse=True)
    assert all(0 <= p <= 1 for p in probs) and sum(probs) <= 1 + 1e-6
    assert all(isinstance(t["class"], int) and t["label"] for t in top)


def test_evaluate(srv, done_job):
    r = srv.ok("POST", "/api/v1/jobs/%d/evaluate" % done_job["id"], {"limit": 500})
    assert r["examples"] == 500
    assert 0.5 < r["top1"] <= 1
    assert sum(map(sum, r["confusion"])) == r["examples"]
    assert len(r["confusion"]) == len(r["class_names"]) == 10
    assert 0 < len(r["worst"]) <= 20
    assert all(w["label"] != w["predicted"] for w in r["worst"])


def test_download_bundle_and_filters(srv, done_job):
    status, headers, data = srv.request("GET", "/api/v1/jobs/%d/download" % done_job["id"])
    assert status == 200, data[:300]
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        names = {os.path.basename(n) for n in tar.getnames()}
        info = json.load(tar.extractfile(
            next(m for m in tar.getmembers() if m.name.endswith("info.json"))))
    assert {"network.yaml", "weights.safetensors", "labels.txt", "info.json"} <= names, names
    assert info
    status, headers, png = srv.request("GET", "/api/v1/jobs/%d/filters.png" % done_job["id"])
    assert status == 200 and headers["Content-Type"] == "image/png" and is_png(png)


# ---- abort, resume ----

def test_abort_then_resume(srv, fm):
    job = srv.job(**quick_job(fm, "aborted", iterations=600, **{"snapshot-every": 100}))
    wait_iter(srv, job, 150)
    srv.ok("POST", "/api/v1/jobs/%d/abort" % job)
    j = srv.wait_job(job)
    assert j["state"] == "aborted", j
    ckpts = os.listdir(os.path.join(j["run_dir"], "checkpoints"))
    assert ckpts, "no checkpoint after abort"
    stopped_at = j["metrics"]["iter"]
    assert stopped_at < 600
    srv.ok("POST", "/api/v1/jobs/%d/resume" % job)
    j = srv.wait_job(job, timeout=180)
    assert j["state"] == "done", j
    iters = history(srv, job)
    assert all(a < b for a, b in zip(iters, iters[1:])), iters  # increasing, no duplicates
    assert_gapless(iters, 10, 600)
    events = all_events(srv, job)
    resumes = [m for _, m in metrics_of(events) if m["event"] == "resume"]
    assert resumes, "the resumed trainer logs a resume event"


def test_abort_as_the_job_starts(srv, fm):
    # Aborted the moment it is queued: the scheduler may be starting it right then. Whichever
    # wins, the job ends aborted, and no trainer goes on with its million iterations.
    for i in range(6):
        job = srv.job(**quick_job(fm, "aborted at start %d" % i, iterations=1000000))
        srv.ok("POST", "/api/v1/jobs/%d/abort" % job)
        j = srv.wait_job(job, timeout=60)
        assert j["state"] == "aborted", j


# ---- the CPU pool's queue ----

def test_queue_runs_in_submission_order(srv, fm):
    tiny = dict(iterations=20, **{"train-limit": 300, "test-limit": 100, "eval-every": 20})
    jobs = [srv.job(**quick_job(fm, "queued %d" % i, **tiny)) for i in range(8)]
    later = srv.get_job(jobs[-1])
    assert later["state"] == "queued"
    wait_for(lambda: srv.get_job(jobs[-1])["waiting_for"], 10, what="waiting_for")
    assert "CPU" in srv.get_job(jobs[-1])["waiting_for"]
    ended = [srv.wait_job(j, timeout=120) for j in jobs]
    assert all(j["state"] == "done" for j in ended), [(j["id"], j["state"], j["error"])
                                                      for j in ended]
    started = [j["started"] for j in ended]
    assert started == sorted(started), started
    for a, b in zip(ended, ended[1:]):  # one at a time: --cpu-slots 1
        assert b["started"] >= a["finished"] - 0.05, (a, b)


# ---- every event, and resuming a stream ----

def test_log_every_iteration_loses_nothing(srv, fm):
    job = srv.job(**quick_job(fm, "every", iterations=300, **{"log-every": 1}))
    events = all_events(srv, job, timeout=120)  # from queued to the end, live
    j = srv.get_job(job)
    assert j["state"] == "done", j
    streamed = [m for _, m in metrics_of(events, "train")]
    written = file_lines(j["run_dir"])
    assert len(streamed) == 300
    assert streamed == written


def test_last_event_id_resumes_exactly(srv, fm):
    job = srv.job(**quick_job(fm, "resumed stream", iterations=200, **{"log-every": 1}))
    first = []
    for ev in srv.events("/api/v1/jobs/%d/events" % job, timeout=60):
        first.append(ev)
        if len(metrics_of(first, "train")) >= 40:
            break  # drop the connection mid-run
    assert srv.get_job(job)["state"] == "running"
    rest = all_events(srv, job, last_event_id=first[-1][0])
    ids = [i for i, _, _ in first + rest]
    assert ids == list(range(1, len(ids) + 1)), ids
    whole = all_events(srv, job)
    assert first + rest == whole
    # ?after=N does the same
    assert all_events(srv, job, timeout=30) == whole
    assert list(srv.events("/api/v1/jobs/%d/events?after=%d" % (job, first[-1][0]),
                           timeout=30)) == rest


# ---- restarts ----

@pytest.fixture
def own_srv(tmp_path, binary):
    s = Server(tmp_path, "--threads", "16")
    s.start()
    yield s
    s.stop()


def test_server_kill9_reattaches(own_srv):
    s = own_srv
    fm = s.dataset()["id"]
    job = s.job(**quick_job(fm, "survivor", iterations=800, **{"snapshot-every": 100}))
    j = wait_iter(s, job, 100)
    pids = trainer_pids(j["run_dir"])
    assert pids, "no trainer process for " + j["run_dir"]
    s.kill9()
    assert all(os.path.exists("/proc/%d" % p) for p in pids), "the trainer died with the server"
    s.start()
    j = s.wait_job(job, timeout=180)
    assert j["state"] == "done", j
    assert_gapless(history(s, job), 10, 800)
    assert [e["iter"] for e in file_lines(j["run_dir"])] == history(s, job)
    events = all_events(s, job)
    assert any(k == "state" and json.loads(d).get("reattached") for _, k, d in events), \
        "the job was not reattached"
    ids = [i for i, _, _ in events]
    assert ids == list(range(1, len(ids) + 1))


def test_trainer_kill9_restarts_from_checkpoint(own_srv):
    s = own_srv
    fm = s.dataset()["id"]
    job = s.job(**quick_job(fm, "crashes", iterations=600, **{"snapshot-every": 50}))
    j = wait_iter(s, job, 160)
    pids = trainer_pids(j["run_dir"])
    assert pids
    for p in pids:
        os.kill(p, signal.SIGKILL)
    j = s.wait_job(job, timeout=180)
    assert j["state"] == "done", j
    assert j["restarts"] == 1
    events = all_events(s, job)
    restarts = [json.loads(d) for _, k, d in events if k == "restart"]
    assert len(restarts) == 1 and restarts[0]["from_iter"] >= 150, restarts
    assert_gapless(history(s, job), 10, 600)


# ---- bad requests ----

BAD_NETWORK = """name: broken
input: [1, 28, 28]
classes: 10
layers:
  - conv: {name: c1, filters: 8, kernel: 5}
  - relux: {name: r1}
  - fc: {name: out, outputs: 10}
"""  # line 6 names a layer type that does not exist


def assert_error(s, status, out, expect):
    assert status == expect, (status, out)
    assert isinstance(out, dict) and out.get("error"), out
    assert s.api("GET", "/api/v1/health", token=None)[0] == 200
    return out["error"]


def test_bad_requests(srv, fm):
    s = srv
    st, _, data = s.request("POST", "/api/v1/jobs", raw=b"{\"name\": ", ctype="application/json")
    assert_error(s, st, json.loads(data), 400)
    assert_error(s, *s.api("GET", "/api/v1/jobs/99999"), 404)
    assert_error(s, *s.api("POST", "/api/v1/jobs/99999/abort"), 404)
    assert_error(s, *s.api("GET", "/api/v1/jobs/99999/events"), 404)
    msg = assert_error(s, *s.api("POST", "/api/v1/jobs", quick_job(fm, epochs="ten")), 400)
    assert "epochs" in msg
    msg = assert_error(s, *s.api("POST", "/api/v1/jobs", quick_job(fm, colour="blue")), 400)
    assert "colour" in msg
    msg = assert_error(s, *s.api("POST", "/api/v1/jobs", quick_job(fm, device="cuda:7")), 400)
    assert "GPU" in msg
    for field, value, expected in [("precision", "fp8", "fp32, tf32, bf16 or fp16"),
                                   ("solver", "sgdd", "nesterov"),
                                   ("lr-policy", "linear", "cosine"),
                                   ("conv-search", "fast", "auto, heuristic, find or tune")]:
        msg = assert_error(s, *s.api("POST", "/api/v1/jobs", quick_job(fm, **{field: value})), 400)
        assert value in msg and expected in msg, (field, msg)
    assert_error(s, *s.api("POST", "/api/v1/jobs", quick_job(99999)), 404)
    assert_error(s, *s.api("GET", "/api/v1/jobs", token=None), 401)
    assert_error(s, *s.api("GET", "/api/v1/jobs", token="0" * 48), 401)
    assert_error(s, *s.api("GET", "/api/v1/jobs/1/events", token=None), 401)


def test_the_recipe_choices_the_server_lists_are_the_ones_it_takes(srv, fm):
    # The New job form offers what GET /networks lists; a job naming anything else is refused
    # with a message naming every listed value.
    choices = srv.ok("GET", "/api/v1/networks")["choices"]
    assert choices["precisions"] == ["fp32", "tf32", "bf16", "fp16"]
    assert {"auto", "tune"} <= set(choices["conv_searches"])
    assert {"sgd", "nesterov", "adam"} <= set(choices["solvers"])
    assert {"fixed", "step", "cosine"} <= set(choices["lr_policies"])
    for field, key in [("precision", "precisions"), ("solver", "solvers"),
                       ("lr-policy", "lr_policies"), ("conv-search", "conv_searches")]:
        msg = assert_error(srv, *srv.api("POST", "/api/v1/jobs", quick_job(fm, **{field: "x"})), 400)
        assert all(v in msg for v in choices[key]), (field, msg)


def test_resource_requests_the_local_scheduler_refuses(srv, fm):
    def refused(why, **fields):
        msg = assert_error(srv, *srv.api("POST", "/api/v1/jobs", quick_job(fm, **fields)), 400)
        assert why in msg, (fields, msg)

    gpus = len(srv.ok("GET", "/api/v1/system")["gpus"])
    refused("'gpus' is for jobs on device cuda", gpus=0)
    refused("'gpus' is for jobs on device cuda", gpus=2)
    refused("'ranks' is for jobs on the CPU", device="cuda", ranks=2)
    refused("'ranks' must be an integer from 1 to 1024", ranks=0)
    refused("needs a cluster: start the server with --scheduler slurm", nodes=2, ranks=2)
    refused("names one GPU", device="cuda:0", gpus=2)
    refused("no GPU" if gpus == 0 else "GPUs but this server has %d" % gpus,
            device="cuda", gpus=gpus + 1)


@pytest.mark.skipif(not shutil.which("mpirun"), reason="mpirun (openmpi-bin) is not installed")
def test_cpu_ranks_train_under_mpirun(srv, fm):
    tiny = dict(iterations=20, **{"train-limit": 300, "test-limit": 100, "eval-every": 20})
    job = srv.job(**quick_job(fm, "two ranks", ranks=2, **tiny))
    j = srv.wait_job(job, timeout=120)
    assert j["state"] == "done", (j, srv.request("GET", "/api/v1/jobs/%d/log" % job)[2][-2000:])
    assert j["metrics"]["iter"] == 20


def test_a_job_too_big_for_the_machine_is_refused_with_a_batch_that_fits(srv, fm):
    msg = assert_error(srv, *srv.api("POST", "/api/v1/jobs",
                                     quick_job(fm, "too big", batch=1048576)), 400)
    m = re.fullmatch(r"this job needs ([0-9.]+) GiB at batch 1048576 but the server's free "
                     r"memory is ([0-9.]+) GiB; the largest batch that fits is ([0-9]+)", msg)
    assert m, msg
    assert float(m[1]) > float(m[2]) > 0 and 0 < int(m[3]) < 1048576, msg
    assert "too big" not in [j["name"] for j in srv.ok("GET", "/api/v1/jobs")["jobs"]]


def test_a_job_out_of_memory_fails_saying_what_to_do(tmp_path, binary):
    # The server's estimate passes (it reads the machine's free memory); the trainer, under
    # the server's 3 GB address space, cannot allocate lenet's 4.6 GB of activations.
    with Server(tmp_path, "--threads", "8", address_space=3 << 30) as s:
        fm = s.dataset("fm", "fashion-mnist")["id"]
        job = s.job(**quick_job(fm, "out of memory", batch=40000, iterations=2))
        j = s.wait_job(job, timeout=60)
        assert j["state"] == "failed", j
        assert j["error"].startswith("out of memory: "), j["error"]
        assert "try a smaller batch" in j["error"], j["error"]
        assert re.search(r"out of host memory allocating [0-9]+ bytes", j["error"]), j["error"]
        assert s.ok("GET", "/api/v1/health")


def test_network_with_an_error(srv, fm):
    r = srv.ok("POST", "/api/v1/networks/validate", {"text": BAD_NETWORK})
    assert r["valid"] is False, r
    assert [e["line"] for e in r["errors"]] == [6], r
    assert "relux" in r["errors"][0]["message"]
    msg = assert_error(srv, *srv.api("POST", "/api/v1/jobs",
                                     quick_job(fm, model=BAD_NETWORK)), 400)
    assert ":6:" in msg or "line 6" in msg, msg
    good = BAD_NETWORK.replace("relux", "relu")
    assert srv.ok("POST", "/api/v1/networks/validate", {"text": good})["valid"] is True


# ---- users ----

def test_users(tmp_path, binary):
    with Server(tmp_path, "--users") as s:
        admin = s.ok("POST", "/api/v1/users", {"name": "ada", "password": "analytical-engine"},
                     expect=201)
        assert admin["admin"] is True

        def login(name, password):
            st, headers, data = s.request("POST", "/api/v1/login",
                                          {"name": name, "password": password}, token=None)
            assert st == 200, data
            cookie = headers["Set-Cookie"]
            assert "HttpOnly" in cookie
            return {"Cookie": cookie.split(";")[0]}

        ada = login("ada", "analytical-engine")
        s.ok("POST", "/api/v1/users", {"name": "bob", "password": "difference-engine"},
             expect=201, token=None, headers=ada)
        st, out = s.api("POST", "/api/v1/login", {"name": "bob", "password": "wrong"},
                        token=None)
        assert st == 401, out
        bob = login("bob", "difference-engine")
        assert s.ok("GET", "/api/v1/me", token=None, headers=bob)["admin"] is False
        st, _ = s.api("POST", "/api/v1/users", {"name": "eve", "password": "x" * 12},
                      token=None, headers=bob)
        assert st == 403

        fm = s.dataset()["id"]
        job = s.ok("POST", "/api/v1/jobs", quick_job(fm, "ada's", iterations=1000000),
                   expect=201, token=None, headers=ada)["id"]
        jobs = s.ok("GET", "/api/v1/jobs", token=None, headers=bob)["jobs"]
        assert job in [j["id"] for j in jobs]
        assert s.ok("GET", "/api/v1/jobs/%d" % job, token=None, headers=bob)["owner"] == \
            admin["user"]
        st, out = s.api("POST", "/api/v1/jobs/%d/abort" % job, token=None, headers=bob)
        assert_error(s, st, out, 403)
        assert s.get_job(job)["state"] in ("queued", "running")
        s.ok("POST", "/api/v1/jobs/%d/abort" % job, token=None, headers=ada)
        assert s.wait_job(job)["state"] == "aborted"


# ---- sweeps ----

def test_sweep_reports_its_best_job(srv, fm):
    base = quick_job(fm, "sweep", iterations=100, **{"eval-every": 50})
    r = srv.ok("POST", "/api/v1/sweeps", {"name": "lr", "job": base,
                                          "grid": {"lr": [0.01, 0.05]}}, expect=201)
    assert len(r["jobs"]) == 2
    lrs = sorted(srv.get_job(j)["spec"]["train"]["lr"] for j in r["jobs"])
    assert lrs == [0.01, 0.05]
    ended = [srv.wait_job(j, timeout=120) for j in r["jobs"]]
    assert all(j["state"] == "done" for j in ended)
    sweep = srv.ok("GET", "/api/v1/sweeps/%d" % r["id"])
    best = max(ended, key=lambda j: j["metrics"]["best_accuracy"])
    assert sweep["best"]["job"] == best["id"], sweep["best"]
    assert sweep["best"]["accuracy"] == pytest.approx(best["metrics"]["best_accuracy"])
