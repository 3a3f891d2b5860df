"""Myelin safetensors -> PyTorch load_state_dict: the same network in PyTorch, loaded from the
file Model.save writes, gives the same outputs."""

import json
import struct

import numpy as np
import pytest

torch = pytest.importorskip("torch")

SAFETENSORS_DTYPES = {"F32": np.float32, "F16": np.float16, "I32": np.int32, "I64": np.int64}


def read_safetensors(path):
    """The tensors of a safetensors file by name (the format is small enough to read here: an
    8-byte little-endian header size, a JSON header, then the data)."""
    blob = open(path, "rb").read()
    (size,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + size])
    header.pop("__metadata__", None)
    data = blob[8 + size:]
    tensors = {}
    for name, t in header.items():
        begin, end = t["data_offsets"]
        array = np.frombuffer(data[begin:end], SAFETENSORS_DTYPES[t["dtype"]])
        tensors[name] = torch.from_numpy(array.reshape(t["shape"]).copy())
    return tensors


class TorchLeNet(torch.nn.Module):
    """models/lenet.yaml in PyTorch, with Myelin's layer names."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 20, 5)
        self.conv2 = torch.nn.Conv2d(20, 50, 5)
        self.ip1 = torch.nn.Linear(800, 500)
        self.ip2 = torch.nn.Linear(500, 10)

    def forward(self, x):
        x = torch.nn.functional.max_pool2d(self.conv1(x), 2)
        x = torch.nn.functional.max_pool2d(self.conv2(x), 2)
        return self.ip2(torch.relu(self.ip1(x.flatten(1))))


def test_pytorch_loads_the_weights_and_gives_the_same_outputs(lenet_model, test_data, tmp_path):
    path = tmp_path / "lenet.safetensors"
    lenet_model.save(path)
    net = TorchLeNet()
    net.load_state_dict(read_safetensors(path), strict=True)  # every name and shape must fit
    x = test_data[0][:200]
    with torch.no_grad():
        theirs = net(torch.from_numpy(x)).numpy()
    mine = lenet_model.forward(x, logits=True)
    np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-4)
    assert (mine.argmax(axis=1) == theirs.argmax(axis=1)).all()
