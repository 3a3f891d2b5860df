#!/usr/bin/env python3
"""Myelin's exported ONNX models in onnxruntime's Python package, beside Myelin's own outputs.

The ONNX export test keeps what it exported when MYELIN_ONNX_KEEP names a directory:

    MYELIN_ONNX_KEEP=/tmp/onnx-keep build/onnx_export_test
    python3 bench/onnx_check.py /tmp/onnx-keep

Each DIR/NAME holds model.onnx, its input (data.bin, described by input.json) and the logits
Myelin's CPU engine gave for it (myelin_logits.bin). Every model runs on each execution provider
onnxruntime offers here (CUDA on a GPU machine, and the CPU) and the table shows the largest
difference from Myelin's logits, absolute and relative to the largest logit. Exit status 1 when
one is over --tolerance.
"""
import argparse
import json
import pathlib
import sys

import numpy as np
import onnxruntime as ort

TYPES = {"float32": np.float32, "int64": np.int64, "int32": np.int32}


def run(model_dir, provider):
    spec = json.loads((model_dir / "input.json").read_text())
    data = np.fromfile(model_dir / "data.bin", dtype=TYPES[spec["type"]]).reshape(spec["dims"])
    # fp32 throughout: the CUDA provider would otherwise use TF32 for convolutions and products.
    options = {"use_tf32": 0} if provider == "CUDAExecutionProvider" else {}
    session = ort.InferenceSession(str(model_dir / "model.onnx"), providers=[(provider, options)])
    logits = session.run(["logits"], {spec["name"]: data})[0]
    want = np.fromfile(model_dir / "myelin_logits.bin", dtype=np.float32)
    diff = np.abs(logits.reshape(-1).astype(np.float64) - want)
    return diff.max(), diff.max() / max(np.abs(want).max(), 1e-30)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dir", type=pathlib.Path, help="the MYELIN_ONNX_KEEP directory")
    p.add_argument("--tolerance", type=float, default=1e-4, help="largest relative difference")
    a = p.parse_args()
    wanted = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    providers = [x for x in wanted if x in ort.get_available_providers()]
    models = sorted(d for d in a.dir.iterdir() if (d / "model.onnx").exists())
    if not models:
        sys.exit(f"onnx_check: no DIR/NAME/model.onnx under {a.dir}")
    print(f"onnxruntime {ort.__version__}; relative: to the largest |logit|")
    print(f"{'network':16} {'provider':24} {'max abs':>10} {'max rel':>10}")
    worst = 0.0
    for d in models:
        for provider in providers:
            abs_diff, rel = run(d, provider)
            worst = max(worst, rel)
            print(f"{d.name:16} {provider:24} {abs_diff:10.3g} {rel:10.3g}")
    sys.exit(0 if worst <= a.tolerance else 1)


if __name__ == "__main__":
    main()
