"""myelin.export_onnx: the same ONNX model as `myelin export` writes from the same weights."""

import subprocess

import pytest

import myelin


def test_export_onnx_equals_the_cli_export(lenet_run, lenet_model, myelin_binary, tmp_path):
    mine = tmp_path / "python.onnx"
    try:
        info = lenet_model.export_onnx(mine)
    except myelin.UnsupportedError as e:
        pytest.skip(str(e))
    assert info["opset"] == 17 and info["initializers"] == 8  # 4 layers x (weight, bias)
    cli = tmp_path / "cli.onnx"
    subprocess.run([myelin_binary, "export", "--weights", lenet_run[0].out_dir, "--out", str(cli)],
                   check=True, capture_output=True)
    assert mine.read_bytes() == cli.read_bytes()
    # Anything Model.load opens exports the same way.
    again = tmp_path / "again.onnx"
    myelin.export_onnx(lenet_run[0].out_dir, again, threads=2)
    assert again.read_bytes() == cli.read_bytes()


def test_export_onnx_passes_the_onnx_checker(lenet_model, tmp_path):
    onnx = pytest.importorskip("onnx")
    path = tmp_path / "lenet.onnx"
    try:
        lenet_model.export_onnx(path)
    except myelin.UnsupportedError as e:
        pytest.skip(str(e))
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert [o.name for o in model.graph.output] == ["logits", "probabilities"]
    meta = {p.key: p.value for p in model.metadata_props}
    assert "Ankle boot" in meta["myelin.class_names"]
