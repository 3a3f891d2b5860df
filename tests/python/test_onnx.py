"""ONNX models in myelin.Model: a model Myelin exported opens again with the same outputs, from its
path and from its bytes; networks PyTorch exports give PyTorch's outputs; a corrupt file, an op
Myelin lacks and a wrong input shape are typed errors that say what is wrong."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import myelin

TORCH_MODELS = os.path.join(os.path.dirname(__file__), "..", "onnx", "torch_models.py")


def onnx_or_skip(f):
    """f(), or the test skipped where this build of Myelin has no ONNX."""
    try:
        return f()
    except myelin.UnsupportedError as e:
        if "ONNX" not in str(e):
            raise
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def exported(lenet_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "lenet.onnx"
    onnx_or_skip(lambda: lenet_model.export_onnx(path))
    return path


def test_exported_model_opens_with_the_same_outputs(exported, lenet_model, test_data):
    x = test_data[0][:70]
    model = myelin.Model.load(exported, threads=2)
    assert model.class_names == lenet_model.class_names and model.input_shape == (1, 28, 28)
    np.testing.assert_allclose(model.forward(x, logits=True), lenet_model.forward(x, logits=True),
                               rtol=1e-5, atol=1e-5)
    from_bytes = myelin.Model.load(exported.read_bytes(), threads=2)
    np.testing.assert_array_equal(from_bytes.forward(x), model.forward(x))


def test_imported_model_saves_and_opens_again(exported, test_data, tmp_path):
    model = myelin.Model.load(exported, threads=2)
    weights = tmp_path / "imported.safetensors"
    model.save(weights)  # its network file was temporary: written beside the weights
    assert (tmp_path / "imported.network.yaml").exists()
    again = myelin.Model.load(weights, threads=2)
    x = test_data[0][:20]
    np.testing.assert_array_equal(again.forward(x), model.forward(x))
    assert again.class_names == model.class_names


def test_wrong_input_shape_is_a_shape_error(exported):
    model = myelin.Model.load(exported, threads=2)
    with pytest.raises(myelin.ShapeError, match=r"\[3, 1, 32, 32\].*\[N, 1, 28, 28\]"):
        model.forward(np.zeros((3, 1, 32, 32), np.float32))


def test_corrupt_onnx_file_is_a_data_error_naming_it(tmp_path):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(bytes((i * 37 + 11) % 256 for i in range(200)))
    with pytest.raises(myelin.DataError, match="not a valid ONNX model") as e:
        onnx_or_skip(lambda: myelin.Model.load(corrupt))
    assert str(corrupt) in str(e.value) and e.value.path == str(corrupt)
    with pytest.raises(myelin.DataError, match="ONNX model in memory"):
        myelin.Model.load(corrupt.read_bytes())


def test_truncated_onnx_file_is_a_data_error(exported, tmp_path):
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(exported.read_bytes()[: exported.stat().st_size // 2])
    with pytest.raises(myelin.DataError) as e:
        myelin.Model.load(truncated)
    assert e.value.path == str(truncated)


@pytest.fixture(scope="module")
def torch_exports(tmp_path_factory):
    """tests/onnx/torch_models.py's models (PyTorch exports with PyTorch's logits)."""
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    out = tmp_path_factory.mktemp("torch")
    subprocess.run([sys.executable, TORCH_MODELS, str(out)], check=True, capture_output=True)
    return out


@pytest.mark.parametrize("name", ["lenet", "resnet", "alexnet"])
def test_pytorch_export_gives_pytorchs_outputs(torch_exports, name):
    shapes = json.loads((torch_exports / f"{name}.json").read_text())
    x = np.fromfile(torch_exports / f"{name}.input.f32", "<f4").reshape(shapes["input"])
    want = np.fromfile(torch_exports / f"{name}.logits.f32", "<f4").reshape(shapes["logits"])
    model = onnx_or_skip(lambda: myelin.Model.load(torch_exports / f"{name}.onnx", threads=2))
    got = model.forward(x, logits=True)
    assert np.abs(got - want).max() < 1e-4 * max(1.0, np.abs(want).max())
    e = np.exp(want - want.max(axis=1, keepdims=True))
    np.testing.assert_allclose(model.forward(x), e / e.sum(axis=1, keepdims=True), atol=1e-5)


def test_op_myelin_lacks_is_an_unsupported_error_naming_the_node(torch_exports):
    with pytest.raises(myelin.UnsupportedError, match=r"node '/Erf' \(Erf\)"):
        myelin.Model.load(torch_exports / "unsupported.onnx")
