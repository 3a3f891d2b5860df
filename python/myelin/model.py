"""Trained models: inference on numpy arrays and images, weights out."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, NamedTuple, Optional, Tuple, Union

import numpy as np

from . import _myelin
from .errors import UsageError
from .network import Network

PathLike = Union[str, "os.PathLike[str]"]


class Prediction(NamedTuple):
    """One of :meth:`Model.classify`'s top classes."""

    label: int
    name: str
    probability: float


class Model:
    """A trained network with its weights, ready to run on numpy arrays.

    Open one with :meth:`Model.load`::

        model = myelin.Model.load("runs/lenet")               # a run directory
        model = myelin.Model.load("lenet.tar.gz")             # a bundle
        model = myelin.Model.load("resnet.onnx")              # an ONNX model (PyTorch's export)
        model = myelin.Model.load("lenet", weights="w.safetensors")
        probs = model.forward(x)        # x: float32 [N, 1, 28, 28] -> [N, 10], rows sum to 1
        model.classify("shoe.png")      # [Prediction(label=7, name='Sneaker', probability=0.93), ...]

    It runs on the inference engine of libmyelin and ``myelin serve-model``. ``forward`` takes
    any N: the network runs in chunks of ``batch`` examples, each at the smallest compiled batch
    size (1, 2, 4, ... ``batch``) that holds it. A C-contiguous float32 array is read where it
    lies (no copy) when a chunk fills its size, else copied once into the engine's padded input;
    any other array (float64, a slice, a transposed view) is converted once first. The GIL is
    released while the network runs, so other Python threads go on; calls from several threads
    run on as many ``instances`` (copies of the network) at once.
    """

    def __init__(self, engine: "_myelin.Model") -> None:
        self._m = engine

    @staticmethod
    def load(path: Union[PathLike, Network, bytes], weights: Optional[PathLike] = None, *,
             device: str = "cpu", threads: int = 0, batch: int = 64,
             instances: int = 1) -> "Model":
        """Opens a trained model.

        ``path`` is one of

        - a bundle (``.tar.gz`` from ``myelin`` runs: network, weights and class names),
        - a run directory, a snapshot directory or a ``.safetensors`` file whose network is
          recorded in it (runs of standard networks and of networks trained from Python are),
        - an ONNX model (``.onnx``, as ``torch.onnx.export`` writes CNNs), imported as
          ``myelin import`` does; an op Myelin lacks raises :class:`myelin.UnsupportedError`
          naming the node,
        - the bytes of a bundle or of an ONNX model (errors then name "bundle in memory" or
          "ONNX model in memory"),
        - with ``weights``: the network, as a standard name, a file, an ONNX model or a
          :class:`Network`.

        ``device``: "cpu" or "cuda[:N]"; ``threads``: CPU threads per instance (0: all cores,
        shared out between instances); ``batch``: the most examples run at once; ``instances``:
        copies of the network, for calls from several threads at once. A truncated or corrupt
        file raises :class:`myelin.DataError` naming it.
        """
        if isinstance(path, (bytes, bytearray, memoryview)):
            if weights is not None:
                raise UsageError("Model.load(bytes) takes no weights=: the bytes hold them")
            engine = _myelin.Model.open_bytes(bytes(path), device, threads, batch, instances)
        elif isinstance(path, Network):
            if weights is None:
                raise UsageError("Model.load(network) needs weights=: a file or run directory")
            engine = _myelin.Model.open(os.fspath(weights), "", path._spec, device, threads,
                                        batch, instances)
        else:
            engine = _myelin.Model.open(os.fspath(path),
                                        os.fspath(weights) if weights is not None else "",
                                        None, device, threads, batch, instances)
        return Model(engine)

    @property
    def network(self) -> Network:
        return Network(self._m.spec)

    @property
    def input_shape(self) -> Tuple[int, ...]:
        """One example's shape, (C, H, W)."""
        return tuple(self._m.spec.input_shape)

    @property
    def classes(self) -> int:
        return self._m.spec.classes

    @property
    def class_names(self) -> List[str]:
        """Names of the classes in label order (from the bundle or the weights' metadata, else
        "0", "1", ...)."""
        return list(self._m.class_names)

    @property
    def batch(self) -> int:
        return self._m.batch

    def forward(self, x: np.ndarray, *, logits: bool = False) -> np.ndarray:
        """Runs the network on ``x`` [N, C, H, W] (the network's input shape, N >= 1).

        Returns float32 [N, classes]: softmax probabilities (each row sums to 1), or the raw
        logits with ``logits=True``. ``x`` must be preprocessed as in training (for the
        standard networks, pixels scaled to [0, 1]; :meth:`prepare` does it for images). A wrong
        shape raises :class:`myelin.ShapeError` naming the shape expected.
        """
        return self._m.forward(x, logits)

    __call__ = forward

    def prepare(self, image: Union[bytes, PathLike], *, resize: str = "squash") -> np.ndarray:
        """A PNG or JPEG image (its bytes or its path) as the network's input, float32
        [C, H, W]: converted to the network's channels, resized ("squash", "crop" or "fill")
        and scaled as in training, exactly as ``myelin classify`` does."""
        data, name = _image_bytes(image)
        return self._m.prepare(data, name, resize)

    def classify(self, image: Union[bytes, PathLike], k: int = 5, *,
                 resize: str = "squash") -> List[Prediction]:
        """The ``k`` most probable classes of an image (bytes or path), most probable first.
        Bytes that are no PNG or JPEG raise :class:`myelin.DataError`."""
        probs = self.forward(self.prepare(image, resize=resize)[np.newaxis])[0]
        top = np.argsort(-probs, kind="stable")[:max(1, min(k, len(probs)))]
        names = self.class_names
        return [Prediction(int(i), names[i], float(probs[i])) for i in top]

    def weights(self) -> Dict[str, np.ndarray]:
        """Parameters and states by name ("conv1.weight", "bn1.running_mean", ...), as copies.
        The layout is PyTorch's: conv weights [out, in, kh, kw], fc weights [out, in]."""
        return dict(self._m.weights())

    def save(self, path: PathLike) -> None:
        """Writes the weights as a safetensors file (readable by ``safetensors`` and PyTorch),
        with the network and class names in its metadata so that :meth:`Model.load` and
        ``myelin classify --weights`` can open it again. A network with no file of its own (built
        in code, or imported from ONNX) is written beside it, as ``NAME.network.yaml``."""
        self._m.save(os.fspath(path))

    def export_onnx(self, path: PathLike) -> Dict[str, int]:
        """Writes the model as ONNX (opset 17), as ``myelin export --format onnx`` does: input
        "data" [N, C, H, W] preprocessed as for :meth:`forward`, outputs "logits" and
        "probabilities", the class names and preprocessing in its metadata. onnxruntime and
        ``onnx.checker`` read it. Returns the opset and the numbers of nodes and initializers.
        Builds without ONNX raise :class:`myelin.UnsupportedError`."""
        return dict(_myelin.export_onnx(self._m, os.fspath(path)))

    def __repr__(self) -> str:
        return f"Model({self._m.spec.name!r}, device={self._m.device!r}, batch={self.batch})"


def _image_bytes(image: Union[bytes, PathLike]) -> Tuple[bytes, str]:
    if isinstance(image, (bytes, bytearray, memoryview)):
        return bytes(image), "image"
    path = os.fspath(image)
    with open(path, "rb") as f:
        return f.read(), path


def write_bundle(run_dir: PathLike, out: PathLike) -> dict:
    """Packs a training run into a bundle (``.tar.gz``: network.yaml, weights.safetensors,
    labels.txt, info.json) that :meth:`Model.load` and libmyelin open. Returns info.json."""
    return json.loads(_myelin.write_bundle(os.fspath(run_dir), os.fspath(out)))


def export_onnx(model: Union[Model, PathLike], out: PathLike, **load: Any) -> Dict[str, int]:
    """Exports a :class:`Model`, or whatever :meth:`Model.load` opens (``load`` holds its
    keywords, e.g. ``weights=``), as an ONNX file: see :meth:`Model.export_onnx`."""
    m = model if isinstance(model, Model) else Model.load(model, **load)
    return m.export_onnx(out)
