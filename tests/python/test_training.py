"""myelin.train on numpy arrays: learning, metrics events, determinism, stopping from the
callback, resuming, and clear errors for bad data."""

import json
import os
import signal
import threading
import time

import numpy as np
import pytest

import myelin

MLP = """
name: mlp2
input: [2, 4, 4]
classes: 3
train: {solver: adam, lr: 0.01, batch: 16, epochs: 3}
layers:
  - fc: {name: ip1, outputs: 32}
  - relu: {name: relu1}
  - fc: {name: ip2, outputs: 3}
"""


def separable(n, seed):
    """Three classes of [2, 4, 4] examples: each class's examples scatter around its own
    random center."""
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(0).normal(size=(3, 2, 4, 4))
    y = rng.integers(0, 3, n)
    x = centers[y] + 0.7 * rng.normal(size=(n, 2, 4, 4))
    return x.astype(np.float32), y


def test_lenet_learns_fashion_mnist_far_above_chance(lenet_run):
    result, _ = lenet_run
    assert result.iterations == 2 * (2000 // 64)
    assert not result.stopped
    assert result.test_top1 > 0.6  # chance: 0.1
    assert os.path.exists(result.weights)


def test_callback_sees_every_metrics_event(lenet_run):
    result, events = lenet_run
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end"
    train = [e for e in events if e["event"] == "train"]
    assert train and all({"loss", "top1", "lr", "epoch"} <= e.keys() for e in train)
    assert train[-1]["iter"] == result.iterations
    assert train[-1]["loss"] < train[0]["loss"]
    tests = [e for e in events if e["event"] == "test"]
    assert [e["epoch"] for e in tests] == [1.0, 2.0]
    assert tests[-1]["top1"] == pytest.approx(result.test_top1)
    # The same events as the run's metrics.jsonl.
    with open(os.path.join(result.out_dir, "metrics.jsonl")) as f:
        assert [json.loads(line) for line in f] == events


def test_yaml_network_with_another_solver_and_the_same_seed_gives_the_same_weights(tmp_path):
    net = myelin.Network.from_yaml(MLP)
    x, y = separable(600, 1)
    xt, yt = separable(300, 2)
    runs = [myelin.train(net, x, y, xt, yt, seed=7, threads=2, out_dir=tmp_path / f"run{i}")
            for i in range(2)]
    assert runs[0].test_top1 > 0.9  # chance: 1/3
    w = [r.model().weights() for r in runs]
    for name in w[0]:
        np.testing.assert_array_equal(w[0][name], w[1][name])
    other = myelin.train(net, x, y, seed=8, threads=2, out_dir=tmp_path / "run-seed8")
    assert not np.array_equal(other.model().weights()["ip1.weight"], w[0]["ip1.weight"])


def test_an_exception_in_the_callback_stops_training_and_resume_finishes(tmp_path):
    net = myelin.Network.from_yaml(MLP)
    x, y = separable(320, 3)  # 20 iterations an epoch

    class Enough(Exception):
        pass

    def stop_at_25(event):
        if event["event"] == "train" and event["iter"] >= 25:
            raise Enough()

    out = tmp_path / "run"
    with pytest.raises(Enough):
        myelin.train(net, x, y, iterations=60, log_every=5, threads=2, out_dir=out,
                     callback=stop_at_25)
    with open(out / "metrics.jsonl") as f:
        last = json.loads(f.readlines()[-1])
    assert last["event"] == "stopped" and last["iter"] == 25
    resumed = myelin.train(net, x, y, resume=out, threads=2, out_dir=out)
    assert resumed.iterations == 60 and not resumed.stopped
    unbroken = myelin.train(net, x, y, iterations=60, threads=2, out_dir=tmp_path / "unbroken")
    np.testing.assert_array_equal(resumed.model().weights()["ip2.weight"],
                                  unbroken.model().weights()["ip2.weight"])


def test_ctrl_c_stops_training_with_a_checkpoint(tmp_path):
    net = myelin.Network.from_yaml(MLP)
    x, y = separable(320, 5)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    start = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):  # 10 million iterations: minutes, unless stopped
            myelin.train(net, x, y, iterations=10_000_000, threads=2, out_dir=tmp_path)
    finally:
        timer.cancel()
    assert time.monotonic() - start < 30
    with open(tmp_path / "metrics.jsonl") as f:
        last = json.loads(f.readlines()[-1])
    assert last["event"] == "stopped" and last["iter"] > 0
    assert os.path.isdir(last["checkpoint"])


def test_bad_training_data_is_a_clear_error(tmp_path):
    net = myelin.Network.from_yaml(MLP)
    x, y = separable(100, 4)
    with pytest.raises(myelin.ShapeError, match=r"x_train of shape \[100, 32\]"):
        myelin.train(net, x.reshape(100, 32), y, out_dir=tmp_path)
    with pytest.raises(myelin.ShapeError, match=r"y_train of shape \[99\]"):
        myelin.train(net, x, y[:99], out_dir=tmp_path)
    bad = y.copy()
    bad[17] = 3
    with pytest.raises(myelin.DataError, match="label 3 at index 17 is outside"):
        myelin.train(net, x, bad, out_dir=tmp_path)
    with pytest.raises(TypeError, match="integer class labels"):
        myelin.train(net, x, y.astype(np.float32), out_dir=tmp_path)
    with pytest.raises(myelin.UsageError, match="fewer than one batch of 200"):
        myelin.train(net, x, y, batch=200, out_dir=tmp_path)
    with pytest.raises(myelin.UsageError, match="both x_test and y_test"):
        myelin.train(net, x, y, y_test=y, out_dir=tmp_path)
    with pytest.raises(myelin.Error, match="unknown solver .sgdd."):
        myelin.train(net, x, y, solver="sgdd", out_dir=tmp_path)
