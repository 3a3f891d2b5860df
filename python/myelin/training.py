"""Training on numpy arrays with the trainer of ``myelin train``."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Sequence, Union

import numpy as np

from . import _myelin
from .errors import UsageError
from .model import Model, PathLike
from .network import Network

#: A metrics event, one line of the run's metrics.jsonl: ``{"event": "train", "iter": 100,
#: "epoch": 0.5, "loss": 0.61, "top1": 0.78, "lr": 0.05, ...}``; events are "start", "train"
#: (every ``log_every`` iterations), "test" (every ``eval_every``: loss, top1, top5),
#: "snapshot", "end".
Event = Dict[str, Any]


@dataclass
class TrainResult:
    """What :func:`train` did. Accuracies are fractions in [0, 1]; -1 when not measured."""

    out_dir: str
    network: Network
    iterations: int
    epochs: float
    seconds: float
    test_top1: float
    test_top5: float
    test_loss: float
    best_top1: float
    best_iter: int
    stopped: bool
    checkpoint: str  #: the last snapshot directory (resume from it with ``resume=out_dir``)
    weights: str  #: out_dir/weights.safetensors

    def model(self, **kwargs: Any) -> Model:
        """The trained model, for inference (``Model.load``'s keywords)."""
        return Model.load(self.out_dir, **kwargs)


def train(network: Union[Network, str], x_train: np.ndarray, y_train: np.ndarray,
          x_test: Optional[np.ndarray] = None, y_test: Optional[np.ndarray] = None, *,
          solver: Optional[str] = None, lr: Optional[float] = None,
          lr_policy: Optional[str] = None, momentum: Optional[float] = None,
          weight_decay: Optional[float] = None, epochs: Optional[int] = None,
          iterations: Optional[int] = None, batch: Optional[int] = None,
          warmup_iters: Optional[int] = None, clip_grad_norm: Optional[float] = None,
          label_smoothing: Optional[float] = None, step_size: Optional[int] = None,
          milestones: Optional[Sequence[int]] = None, gamma: Optional[float] = None,
          out_dir: Optional[PathLike] = None, device: str = "cpu", threads: int = 0,
          precision: str = "fp32", seed: int = 1, eval_every: int = 0, log_every: int = 0,
          snapshot_every: int = 0, keep: int = 3, eval_batch: int = 100,
          resume: Optional[PathLike] = None, weights: Optional[PathLike] = None,
          class_names: Optional[Sequence[str]] = None,
          callback: Optional[Callable[[Event], None]] = None,
          verbose: bool = False) -> TrainResult:
    """Trains ``network`` on examples in numpy arrays, as ``myelin train`` does on a dataset.

    ``x_train``: float32 [N, C, H, W] (the network's input shape), used as given: scale pixels
    yourself (the standard networks expect [0, 1]). ``y_train``: integer labels [N] in
    [0, classes). ``x_test``/``y_test``: a test set, evaluated every ``eval_every`` iterations
    (default: every epoch) and at the end. The training examples are shuffled every epoch in an
    order drawn from ``seed``, and a short last batch is dropped.

    The recipe (solver, lr, lr_policy, momentum, ..., batch, epochs) defaults to the network
    file's; any argument given overrides it. ``iterations`` sets the run's length in updates
    instead of ``epochs``. Solvers: sgd, nesterov, adam, adamw, rmsprop, adagrad; LR policies:
    fixed, step, multistep, exp, inv, poly, cosine.

    Everything ``myelin train`` writes goes to ``out_dir`` (a fresh temporary directory when
    not given): metrics.jsonl, checkpoints/ (``resume=out_dir`` continues a stopped run
    exactly), weights.safetensors and network.yaml, so ``myelin classify --weights out_dir``
    and :meth:`Model.load` open the result. ``weights``: initial weights to fine-tune.

    ``callback(event)`` is called with each metrics event (see :data:`Event`). If it raises, or
    Ctrl-C is pressed, training stops after the current step, writes a checkpoint and the
    exception propagates. Example::

        net = myelin.Network.load("lenet")
        result = myelin.train(net, x, y, x_test, y_test, epochs=2, lr=0.05,
                              callback=lambda e: print(e["event"], e.get("loss")))
        print(result.test_top1)
        probs = result.model().forward(x_test)
    """
    if (x_test is None) != (y_test is None):
        raise UsageError("give both x_test and y_test, or neither")
    net = network if isinstance(network, Network) else Network.load(network)
    out = os.fspath(out_dir) if out_dir is not None else tempfile.mkdtemp(prefix="myelin-run-")
    os.makedirs(out, exist_ok=True)
    # The network beside the run, so the run directory opens on its own (Model.load, bundles).
    network_file = os.path.abspath(os.path.join(out, "network.yaml"))
    if resume is None:
        with open(network_file, "w") as f:
            f.write(net.to_yaml())

    o = _myelin.TrainOptions()
    o.model = network_file
    o.out_dir = out
    o.device, o.threads, o.precision, o.seed = device, threads, precision, seed
    o.eval_every, o.log_every, o.snapshot_every, o.keep = eval_every, log_every, snapshot_every, keep
    o.eval_batch = eval_batch
    o.resume = os.fspath(resume) if resume is not None else ""
    o.weights = os.fspath(weights) if weights is not None else ""
    o.quiet = not verbose
    r = _myelin.RecipeOverrides()
    given = dict(solver=solver, lr=lr, lr_policy=lr_policy, momentum=momentum,
                 weight_decay=weight_decay, epochs=epochs, max_iter=iterations, batch=batch,
                 warmup_iters=warmup_iters, clip_grad_norm=clip_grad_norm,
                 label_smoothing=label_smoothing, step_size=step_size,
                 milestones=list(milestones) if milestones is not None else None, gamma=gamma)
    for key, value in given.items():
        if value is not None:
            setattr(r, key, value)
    o.overrides = r

    hook = None
    if callback is not None:
        def hook(event_json: str) -> None:
            callback(json.loads(event_json))
    result = _myelin.train(o, net._spec, x_train, y_train, x_test, y_test,
                           list(class_names or []), hook)
    return TrainResult(out_dir=out, network=net, **result)
