"""PyTorch models exported to ONNX for Myelin's import tests.

Writes, for each model NAME, into the output directory:
  NAME.onnx          torch.onnx.export of the model in eval mode
  NAME.input.f32     a fixed random input batch, float32 little-endian
  NAME.logits.f32    PyTorch's output for it (the logits, before any softmax), float32
  NAME.json          {"input": [N, C, H, W], "logits": [N, K]}
and unsupported.onnx, a model with an op Myelin does not import (Erf).

With --fashion-mnist DIR, the LeNet is first trained briefly on Fashion-MNIST (pixels / 255, as
its ONNX metadata myelin.input_scale says), so that fine-tuning it starts from a low loss.

Usage: /usr/bin/python3 torch_models.py OUT_DIR [--fashion-mnist DIR]
"""
import argparse
import gzip
import json
import os

import numpy as np
import onnx
import torch
from torch import nn
import torch.nn.functional as F


class LeNet(nn.Module):
    """Caffe's LeNet with a tanh, ending in a softmax that the importer drops."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, 5)
        self.conv2 = nn.Conv2d(20, 50, 5)
        self.fc1 = nn.Linear(800, 500)
        self.fc2 = nn.Linear(500, 10)
        self.with_softmax = True

    def forward(self, x):
        x = F.max_pool2d(self.conv1(x), 2)
        x = F.max_pool2d(torch.tanh(self.conv2(x)), 2)
        x = F.relu(self.fc1(torch.flatten(x, 1)))
        x = self.fc2(x)
        return F.softmax(x, dim=1) if self.with_softmax else x


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                      nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.down is None else self.down(x)))


class SmallResNet(nn.Module):
    """Basic blocks with batch norm and residual adds, global average and max pools concatenated,
    a batch norm on the pooled features (kept as BatchNormalization: the exporter folds only
    conv+bn pairs), and a view to [N, -1] whose shape PyTorch computes from the symbolic batch."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16),
                                  nn.ReLU())
        self.blocks = nn.Sequential(BasicBlock(16, 16, 1), BasicBlock(16, 32, 2),
                                    BasicBlock(32, 32, 1))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.bn = nn.BatchNorm2d(64)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        x = self.bn(torch.cat([self.pool(x), F.adaptive_max_pool2d(x, 1)], 1))
        return self.fc(x.view(x.size(0), -1))  # with a symbolic batch: Shape, Gather, Reshape


class LRN(torch.autograd.Function):
    """F.local_response_norm, exported as ONNX's LRN op (PyTorch 1.13 writes its decomposition
    into pads, pools and reshapes instead)."""

    @staticmethod
    def forward(ctx, x, size, alpha, beta, k):
        return F.local_response_norm(x, size, alpha, beta, k)

    @staticmethod
    def symbolic(g, x, size, alpha, beta, k):
        return g.op("LRN", x, size_i=size, alpha_f=alpha, beta_f=beta, bias_f=k)


class LocalResponseNorm(nn.LocalResponseNorm):
    def forward(self, x):
        return LRN.apply(x, self.size, self.alpha, self.beta, self.k)


class AlexNetSmall(nn.Module):
    """AlexNet's shape for 32x32: grouped convolutions, LRN, overlapping max pools (ceil mode),
    an average pool that leaves padding out, dropout, a reshape and fully connected layers (one as
    MatMul + Add), with sigmoid and leaky ReLU along the way."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 5, padding=2)
        self.lrn1 = LocalResponseNorm(5, alpha=1e-3, beta=0.75, k=2.0)
        self.conv2 = nn.Conv2d(32, 64, 5, padding=2, groups=2)
        self.lrn2 = LocalResponseNorm(3, alpha=1e-4, beta=0.75, k=1.0)
        self.conv3 = nn.Conv2d(64, 96, 3, padding=2, dilation=2)
        self.conv4 = nn.Conv2d(96, 64, 3, stride=2, padding=1, groups=4)
        self.avg = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
        self.drop = nn.Dropout(0.5)
        self.fc1 = nn.Linear(64 * 4 * 4, 128)
        self.w2 = nn.Parameter(torch.randn(128, 10) * 0.1)
        self.b2 = nn.Parameter(torch.randn(10) * 0.1)

    def forward(self, x):
        x = F.max_pool2d(self.lrn1(F.relu(self.conv1(x))), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.lrn2(F.relu(self.conv2(x))), 3, 2, ceil_mode=True)
        x = torch.sigmoid(self.conv3(x))
        x = self.avg(F.leaky_relu(self.conv4(x), 0.1))
        x = self.drop(x.reshape(x.shape[0], -1))
        x = self.drop(F.relu(self.fc1(x)))
        return torch.matmul(x, self.w2) + self.b2


class Unsupported(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(torch.erf(torch.flatten(x, 1)))


def randomize_batch_norms(model):
    """Running statistics away from 0 and 1, so that importing them wrongly shows."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def train_lenet(model, data_dir, steps=60, batch=64):
    images = read_idx(os.path.join(data_dir, "train-images-idx3-ubyte.gz"))[:steps * batch]
    labels = read_idx(os.path.join(data_dir, "train-labels-idx1-ubyte.gz"))[:steps * batch]
    x = torch.from_numpy(images.astype(np.float32) / 255).unsqueeze(1)
    y = torch.from_numpy(labels.astype(np.int64))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.with_softmax = False
    model.train()
    for i in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(model(x[i * batch:(i + 1) * batch]), y[i * batch:(i + 1) * batch])
        loss.backward()
        opt.step()
    model.with_softmax = True
    return loss.item()


def export(model, name, input_shape, out_dir, metadata=None, reference=None):
    model.eval()
    x = torch.randn(*input_shape)
    with torch.no_grad():
        logits = (reference or model)(x)
    path = os.path.join(out_dir, name + ".onnx")
    torch.onnx.export(model, x, path, opset_version=13 if name == "lenet" else 17,
                      input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch"}} if name == "resnet" else None)
    if metadata:
        proto = onnx.load(path)
        for k, v in metadata.items():
            proto.metadata_props.add(key=k, value=v)
        onnx.save(proto, path)
    x.numpy().astype("<f4").tofile(os.path.join(out_dir, name + ".input.f32"))
    logits.numpy().astype("<f4").tofile(os.path.join(out_dir, name + ".logits.f32"))
    with open(os.path.join(out_dir, name + ".json"), "w") as f:
        json.dump({"input": list(x.shape), "logits": list(logits.shape)}, f)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out_dir")
    p.add_argument("--fashion-mnist", default="")
    args = p.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    torch.manual_seed(7)
    torch.set_num_threads(2)

    lenet = LeNet()
    metadata = None
    if args.fashion_mnist:
        print("lenet trained, last loss %.3f" % train_lenet(lenet, args.fashion_mnist))
        metadata = {"myelin.input_scale": repr(1 / 255)}
    logits_only = LeNet()
    logits_only.load_state_dict(lenet.state_dict())
    logits_only.with_softmax = False
    export(lenet, "lenet", (4, 1, 28, 28), args.out_dir, metadata, reference=logits_only.eval())

    resnet = SmallResNet()
    randomize_batch_norms(resnet)
    export(resnet, "resnet", (3, 3, 32, 32), args.out_dir)
    export(AlexNetSmall(), "alexnet", (2, 3, 32, 32), args.out_dir)
    export(Unsupported(), "unsupported", (2, 4), args.out_dir)


if __name__ == "__main__":
    main()
