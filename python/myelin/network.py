"""Networks: what a model computes, before any weights."""

from __future__ import annotations

import json
from typing import Any, Dict, List, Tuple, TypedDict

from . import _myelin


class LayerInfo(TypedDict):
    """One row of :meth:`Network.layers`."""

    name: str
    type: str
    output: Tuple[int, ...]  #: shape of one example's output, e.g. (20, 24, 24)
    params: int  #: trained parameters
    flops: int  #: forward FLOPs per example (a multiply-add counts 2)


class Network:
    """A network definition: layers, input shape, classes and the recommended training recipe.

    Load a standard network by name (``myelin.Network.load("lenet")``; the names are in
    :func:`standard_networks`), a network file by path, or YAML text::

        net = myelin.Network.from_yaml('''
        name: tiny
        input: [1, 28, 28]
        classes: 10
        layers:
          - fc: {name: ip1, outputs: 64}
          - relu: {name: relu1}
          - fc: {name: ip2, outputs: 10}
        ''')
        print(net.describe())        # a table: layer, output, params, FLOPs
        net.input_shape, net.classes # (1, 28, 28), 10

    Bad files raise :class:`myelin.ParseError` naming the file, line and field.
    """

    def __init__(self, spec: "_myelin.NetworkSpec") -> None:
        self._spec = spec

    @staticmethod
    def load(name_or_path: str) -> "Network":
        """A standard network by name (``"lenet"``, ``"alexnet"``, ...) or a network file."""
        return Network(_myelin.NetworkSpec.load(str(name_or_path)))

    @staticmethod
    def from_yaml(text: str, name: str = "<yaml>") -> "Network":
        """A network from the text of a network file; ``name`` stands for the file in errors."""
        return Network(_myelin.NetworkSpec.parse(text, name))

    @property
    def name(self) -> str:
        return self._spec.name

    @property
    def description(self) -> str:
        return self._spec.description

    @property
    def input_shape(self) -> Tuple[int, ...]:
        """One example's shape, (C, H, W) for images; a batch is (N, C, H, W)."""
        return tuple(self._spec.input_shape)

    @property
    def classes(self) -> int:
        return self._spec.classes

    @property
    def recipe(self) -> Dict[str, Any]:
        """The training settings the network file recommends (solver, lr, batch, epochs, ...);
        :func:`myelin.train`'s arguments override them."""
        return json.loads(self._spec.recipe)

    def layers(self) -> List[LayerInfo]:
        """Each layer with its output shape, parameters and forward FLOPs per example."""
        return self._spec.cost()["layers"]

    @property
    def params(self) -> int:
        """Trained parameters in all."""
        return self._spec.cost()["params"]

    @property
    def flops(self) -> int:
        """Forward FLOPs per example."""
        return self._spec.cost()["flops"]

    def describe(self) -> str:
        """A table of the layers: output shape, parameters and FLOPs."""
        return self._spec.describe()

    def to_yaml(self) -> str:
        """The network written back as a network file."""
        return self._spec.to_yaml()

    def __repr__(self) -> str:
        return (f"Network({self.name!r}, input={self.input_shape}, classes={self.classes}, "
                f"params={self.params})")


def standard_networks() -> List[str]:
    """The names :meth:`Network.load` knows without a path (the files of models/)."""
    return list(_myelin.standard_networks())
