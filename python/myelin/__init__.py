"""Myelin from Python: load networks and trained models, run them on numpy arrays, train them.

::

    import numpy as np
    import myelin

    net = myelin.Network.load("lenet")          # or a network file, or Network.from_yaml(text)
    print(net.describe())                       # layers, output shapes, parameters, FLOPs

    result = myelin.train(net, x_train, y_train, x_test, y_test, epochs=2)  # numpy arrays
    model = result.model()                      # or myelin.Model.load("run-dir" | "m.tar.gz")
    probs = model.forward(x_test[:10])          # float32 [10, 10], rows sum to 1
    model.classify("shoe.png", k=3)             # top classes of an image file
    model.save("lenet.safetensors")             # PyTorch's load_state_dict reads these names
    model.export_onnx("lenet.onnx")             # for onnxruntime and other runtimes

Errors of the library are :class:`myelin.Error` subclasses (``ShapeError``, ``DataError``,
``ParseError``, ...) carrying the library's message.
"""

from .errors import (DataError, DeviceError, DivergedError, Error, ParseError, ShapeError,
                     UnsupportedError, UsageError)
from .network import LayerInfo, Network, standard_networks
from .model import Model, Prediction, export_onnx, write_bundle
from .training import Event, TrainResult, train

__all__ = ["Network", "LayerInfo", "standard_networks", "Model", "Prediction", "write_bundle", "export_onnx",
           "train", "TrainResult", "Event", "Error", "ShapeError", "ParseError", "DataError",
           "UsageError", "DeviceError", "UnsupportedError", "DivergedError"]
