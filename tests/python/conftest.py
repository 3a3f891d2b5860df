"""Fixtures of the Python module's tests: a slice of Fashion-MNIST read with numpy, one short
LeNet run trained from Python (shared by the tests that need trained weights), and helpers."""

import gzip
import os
import shutil
import struct
import zlib

import numpy as np
import pytest

# OpenMP threads that sleep when idle instead of spinning: CI runs other tests on the same two
# cores, and spinning threads fighting for them made a 1-second training take 20 (read when the
# OpenMP runtime loads, so before myelin is imported).
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import myelin  # noqa: E402

FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


def read_idx(path):
    """An IDX file (MNIST format) as a numpy array."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = np.frombuffer(data, ">u4", ndim, 4).astype(int)
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def fashion_mnist(split, count):
    """The first `count` images of a split as float32 [N, 1, 28, 28] in [0, 1], and labels."""
    prefix = "train" if split == "train" else "t10k"
    images = os.path.join(FASHION_MNIST, f"{prefix}-images-idx3-ubyte.gz")
    labels = os.path.join(FASHION_MNIST, f"{prefix}-labels-idx1-ubyte.gz")
    if not os.path.exists(images):
        pytest.skip(f"Fashion-MNIST is not installed ({images}): apt install dataset-fashion-mnist")
    x = read_idx(images)[:count].astype(np.float32)[:, None] / 255
    return x, read_idx(labels)[:count].astype(np.int64)


def write_png(path, gray):
    """A 8-bit grayscale PNG of a 2-D uint8 array (so the tests need no imaging library)."""
    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body +
                struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    h, w = gray.shape
    rows = b"".join(b"\x00" + gray[r].tobytes() for r in range(h))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) +
           chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    with open(path, "wb") as f:
        f.write(png)


@pytest.fixture(scope="session")
def train_data():
    return fashion_mnist("train", 2000)


@pytest.fixture(scope="session")
def test_data():
    return fashion_mnist("test", 500)


@pytest.fixture(scope="session")
def lenet_run(tmp_path_factory, train_data, test_data):
    """LeNet trained for two epochs on 2,000 images (about a second on 2 cores), with the
    events its callback saw."""
    events = []
    out = tmp_path_factory.mktemp("lenet-run")
    result = myelin.train("lenet", *train_data, *test_data, epochs=2, warmup_iters=10, threads=2,
                          out_dir=out, class_names=CLASS_NAMES, callback=events.append)
    return result, events


@pytest.fixture(scope="session")
def lenet_model(lenet_run):
    return lenet_run[0].model(threads=2)


@pytest.fixture(scope="session")
def myelin_binary():
    path = os.environ.get("MYELIN_BINARY") or shutil.which("myelin")
    if not path:
        pytest.skip("no myelin binary: set MYELIN_BINARY (ctest does)")
    return path


CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot"]
