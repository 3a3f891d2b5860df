"""`myelin serve --scheduler slurm` against a real one-node Slurm cluster.

tests/slurm/cluster.sh starts munged, slurmctld and slurmd as root in a private temp dir (its own
config, ports and munge socket) and stops them afterwards, also when a test fails or this process
is killed (its watchdog). Jobs are small LeNets on a slice of Fashion-MNIST: the file takes about
a minute on 2 cores. Where the cluster cannot run (not root, Slurm not installed), it is skipped
with the reason.
"""
import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "server"))
from harness import FASHION, Server, Unavailable, find_binary, quick_job, wait_for  # noqa: E402

CLUSTER = os.path.join(HERE, "cluster.sh")
FINAL = ("done", "failed", "aborted")

pytestmark = pytest.mark.skipif(not os.path.isdir(FASHION),
                                reason="dataset-fashion-mnist is not installed")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("slurm"))
    r = subprocess.run([CLUSTER, "start", d, str(os.getpid())], capture_output=True, text=True,
                       timeout=120)
    if r.returncode == 77:
        pytest.skip(r.stderr.strip())
    try:
        assert r.returncode == 0, "the cluster did not start:\n" + r.stdout + r.stderr
        conf = r.stdout.strip().split("SLURM_CONF=")[-1]
        old = os.environ.get("SLURM_CONF")
        os.environ["SLURM_CONF"] = conf  # for the server's sbatch/squeue/scancel and ours
        yield d
    finally:
        subprocess.run([CLUSTER, "stop", d], timeout=120)
        if "old" in locals():
            if old is None:
                os.environ.pop("SLURM_CONF", None)
            else:
                os.environ["SLURM_CONF"] = old


@pytest.fixture(scope="module")
def srv(tmp_path_factory, cluster):
    try:
        find_binary()
    except Unavailable as e:
        pytest.skip(str(e))
    with Server(tmp_path_factory.mktemp("serve-slurm"), "--scheduler", "slurm",
                "--threads", "16") as s:
        yield s


@pytest.fixture(scope="module")
def fm(srv):
    d = srv.dataset("fm", "fashion-mnist")
    assert d["state"] == "ready", d
    return d["id"]


def slurm_jobs(job):
    """(Slurm id, state) of each batch job the server submitted for `job`, oldest first."""
    out = subprocess.run(["squeue", "--noheader", "--states=all", "--name=myelin-%d" % job,
                          "--format=%i|%T"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    rows = [line.split("|") for line in out.stdout.split()]
    return sorted((int(i), state) for i, state in rows)


def events_of(srv, job):
    return list(srv.events("/api/v1/jobs/%d/events" % job, timeout=60))


def states_of(events):
    states = [json.loads(d)["state"] for _, k, d in events if k == "state"]
    return [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s]


def metrics_of(events, kind):
    return [m for m in (json.loads(d) for _, k, d in events if k == "metrics")
            if m["event"] == kind]


def test_job_runs_as_a_slurm_batch_job(srv, fm):
    tiny = {"iterations": 20, "train-limit": 300, "test-limit": 100, "eval-every": 20,
            "log-every": 5}
    job = srv.job(**quick_job(fm, "on slurm", **tiny))
    j = srv.wait_job(job, timeout=120)
    assert j["state"] == "done", j
    assert j["pool"] == "slurm"
    events = events_of(srv, job)
    assert states_of(events) == ["queued", "running", "done"], events
    assert [m["iter"] for m in metrics_of(events, "train")] == [5, 10, 15, 20]
    assert metrics_of(events, "test") and metrics_of(events, "end")
    assert any(k == "log" for _, k, _ in events), "log lines reach the event stream"
    assert slurm_jobs(job) and slurm_jobs(job)[-1][1] == "COMPLETED", slurm_jobs(job)
    with open(os.path.join(j["run_dir"], "job.sbatch")) as f:
        script = f.read()
    assert "#SBATCH --ntasks=1" in script and "'--device' 'cpu'" in script, script
    assert "test accuracy" in srv.request("GET", "/api/v1/jobs/%d/log" % job)[2].decode()


def test_abort_stops_with_a_checkpoint_and_resume_resubmits(srv, fm):
    job = srv.job(**quick_job(fm, "aborted on slurm", iterations=600,
                              **{"snapshot-every": 100, "eval-every": 300}))

    def past(it):
        j = srv.get_job(job)
        assert j["state"] not in FINAL, j
        return j["metrics"].get("iter", 0) >= it
    wait_for(lambda: past(120), 90, interval=0.1, what="job %d past iteration 120" % job)
    srv.ok("POST", "/api/v1/jobs/%d/abort" % job)
    j = srv.wait_job(job, timeout=60)
    assert j["state"] == "aborted", j
    stopped_at = j["metrics"]["iter"]
    assert 120 <= stopped_at < 600, j
    ckpts = [c for c in os.listdir(os.path.join(j["run_dir"], "checkpoints")) if c != "latest"]
    assert ckpts, "the trainer wrote no checkpoint on SIGTERM"
    # One batch job, ended by the trainer's own exit (130: stopped on a signal, which Slurm
    # calls FAILED), not killed by Slurm.
    assert [s for _, s in slurm_jobs(job)] in (["COMPLETED"], ["FAILED"]), slurm_jobs(job)

    srv.ok("POST", "/api/v1/jobs/%d/resume" % job)
    j = srv.wait_job(job, timeout=120)
    assert j["state"] == "done", j
    assert len(slurm_jobs(job)) == 2, slurm_jobs(job)  # a second batch job
    with open(os.path.join(j["run_dir"], "job.sbatch")) as f:
        assert "'--resume'" in f.read()
    events = events_of(srv, job)
    assert metrics_of(events, "resume"), "the resumed trainer logs a resume event"
    iters = [m["iter"] for m in metrics_of(events, "train")]
    assert iters == list(range(10, 601, 10)), iters  # no gap, no repeat across the resume


def test_a_killed_server_finds_its_slurm_job_again(srv, fm):
    job = srv.job(**quick_job(fm, "outlives the server", iterations=600, **{"eval-every": 300}))
    wait_for(lambda: srv.get_job(job)["metrics"].get("iter", 0) >= 100, 90, interval=0.1,
             what="job %d past iteration 100" % job)
    srv.kill9()
    srv.start()
    j = srv.wait_job(job, timeout=120)
    assert j["state"] == "done", j
    assert len(slurm_jobs(job)) == 1, slurm_jobs(job)  # followed again, not submitted again
    iters = [m["iter"] for m in metrics_of(events_of(srv, job), "train")]
    assert iters == list(range(10, 601, 10)), iters


def test_a_job_waiting_in_slurm_is_queued_and_aborts(srv, fm, tmp_path):
    # A job of someone else takes the whole node: ours waits in Slurm's queue.
    blocker = subprocess.run(["sbatch", "--parsable", "--exclusive", "--job-name=blocker",
                              "--output=/dev/null", "--wrap=sleep 120"],
                             capture_output=True, text=True, timeout=30)
    assert blocker.returncode == 0, blocker.stderr
    try:
        job = srv.job(**quick_job(fm, "waits in slurm"))
        j = wait_for(lambda: (lambda x: x if x["waiting_for"] and "Slurm job" in x["waiting_for"]
                              else None)(srv.get_job(job)), 30, what="job %d to wait" % job)
        assert j["state"] == "queued", j
        assert [s for _, s in slurm_jobs(job)] == ["PENDING"], slurm_jobs(job)
        srv.ok("POST", "/api/v1/jobs/%d/abort" % job)
        j = srv.wait_job(job, timeout=30)
        assert j["state"] == "aborted", j
        assert slurm_jobs(job)[0][1] != "PENDING", slurm_jobs(job)
        assert "running" not in states_of(events_of(srv, job))
    finally:
        subprocess.run(["scancel", blocker.stdout.strip().split(";")[0]], timeout=30)


def test_cpu_ranks_run_under_mpirun_in_the_allocation(srv, fm):
    tiny = {"iterations": 20, "train-limit": 300, "test-limit": 100, "eval-every": 20}
    job = srv.job(**quick_job(fm, "two ranks on slurm", ranks=2, **tiny))
    j = srv.wait_job(job, timeout=120)
    log = srv.request("GET", "/api/v1/jobs/%d/log" % job)[2].decode()
    assert j["state"] == "done", (j, log[-2000:])
    with open(os.path.join(j["run_dir"], "job.sbatch")) as f:
        script = f.read()
    assert "#SBATCH --ntasks=2" in script and "'mpirun'" in script, script


def test_a_job_slurm_refuses_fails_with_its_reason(srv, fm):
    # Accepted (the cluster, not this server, has the GPUs), refused by sbatch: no GPU here.
    job = srv.job(**quick_job(fm, "two gpus", device="cuda", gpus=2))
    j = srv.wait_job(job, timeout=60)
    assert j["state"] == "failed", j
    assert "sbatch" in j["error"], j


def test_bad_requests(srv, fm):
    def refused(why, **fields):
        status, out = srv.api("POST", "/api/v1/jobs", quick_job(fm, **fields))
        assert status == 400, (fields, status, out)
        assert why in out["error"], (fields, out)

    refused("'gpus' is for jobs on device cuda", gpus=0)
    refused("'gpus' must be an integer from 1 to 1024", device="cuda", gpus=0)
    refused("'gpus' must be an integer", device="cuda", gpus="two")
    refused("the cluster picks the GPUs", device="cuda:0")
    refused("'ranks' is for jobs on the CPU", device="cuda", ranks=2)
    refused("'nodes' must be an integer from 1 to 1024", nodes=0)
    refused("needs at least 2 ranks", nodes=2)
