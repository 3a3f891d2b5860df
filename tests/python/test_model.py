"""myelin.Model: forward on numpy arrays, images beside `myelin classify`, weights and bundles,
and clear errors for bad input."""

import json
import subprocess
import threading
import tracemalloc

import numpy as np
import pytest

import myelin
from conftest import CLASS_NAMES, write_png


def test_forward_gives_probabilities_for_any_batch(lenet_model, test_data):
    x, _ = test_data
    assert lenet_model.batch == 64
    for n in (1, 64, 65, 130):
        p = lenet_model.forward(x[:n])
        assert p.shape == (n, 10) and p.dtype == np.float32
        np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-5)
        assert (p >= 0).all()
    # Chunks and padding change nothing: each example's row is what it gets alone.
    whole = lenet_model.forward(x[:130])
    alone = np.concatenate([lenet_model.forward(x[i:i + 1]) for i in range(0, 130, 13)])
    np.testing.assert_allclose(whole[::13], alone, rtol=1e-5, atol=1e-6)


def test_logits_are_what_the_probabilities_are_made_of(lenet_model, test_data):
    x = test_data[0][:20]
    logits = lenet_model.forward(x, logits=True)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(e / e.sum(axis=1, keepdims=True), lenet_model.forward(x),
                               rtol=1e-5, atol=1e-7)


def test_any_layout_or_dtype_gives_the_same_result(lenet_model, test_data):
    x = test_data[0][:100]
    reference = lenet_model.forward(np.ascontiguousarray(x[::2]))  # read in place
    for same in (x[::2],                                  # a strided view
                 np.asfortranarray(x[::2]),               # another memory order
                 x[::2].astype(np.float64),               # another dtype
                 x[::2].tolist()):                        # not even an array
        np.testing.assert_array_equal(lenet_model.forward(same), reference)
    frozen = np.ascontiguousarray(x[::2])
    frozen.flags.writeable = False                        # only read, never written
    np.testing.assert_array_equal(lenet_model(frozen), reference)


def peak_allocation(f):
    """The most memory (bytes) Python and numpy held at once while f() ran, beyond before."""
    tracemalloc.start()
    try:
        f()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_contiguous_float32_input_is_not_copied(lenet_model, test_data):
    x = np.ascontiguousarray(test_data[0][:320])
    lenet_model.forward(x)  # warm
    output = 320 * 10 * 4
    assert peak_allocation(lambda: lenet_model.forward(x)) < output + x.nbytes // 4
    # Another dtype or layout is converted once: a float32 copy of the whole input.
    doubles, flipped = x.astype(np.float64), x[:, :, ::-1]
    assert peak_allocation(lambda: lenet_model.forward(doubles)) > x.nbytes
    assert peak_allocation(lambda: lenet_model.forward(flipped)) > x.nbytes


def test_threads_share_a_model(lenet_model, test_data):
    x = test_data[0][:256]
    expected = [lenet_model.forward(x[i::4]) for i in range(4)]
    got = [None] * 4

    def run(i):
        for _ in range(5):
            got[i] = lenet_model.forward(x[i::4])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        np.testing.assert_array_equal(got[i], expected[i])


def test_trained_model_scores_the_test_set_as_training_reported(lenet_run, lenet_model,
                                                                test_data):
    result, _ = lenet_run
    x, y = test_data
    accuracy = (lenet_model.forward(x).argmax(axis=1) == y).mean()
    assert accuracy == pytest.approx(result.test_top1, abs=1e-9)


def test_classify_matches_the_cli(lenet_run, lenet_model, test_data, myelin_binary, tmp_path):
    image = tmp_path / "shoe.png"
    write_png(image, np.round(test_data[0][0, 0] * 255).astype(np.uint8))
    mine = lenet_model.classify(image, k=3)
    assert [p.name for p in mine] == [CLASS_NAMES[p.label] for p in mine]
    cli = subprocess.run([myelin_binary, "classify", "--weights", lenet_run[0].out_dir,
                          "--top", "3", "--threads", "2", "--json", str(image)],
                         check=True, capture_output=True, text=True)
    theirs = json.loads(cli.stdout)[0]["top"]
    assert [p.label for p in mine] == [t["label"] for t in theirs]
    assert [p.name for p in mine] == [t["name"] for t in theirs]
    np.testing.assert_allclose([p.probability for p in mine],
                               [t["probability"] for t in theirs], rtol=1e-5, atol=1e-6)
    # Bytes in memory are the same image.
    assert lenet_model.classify(image.read_bytes(), k=3) == mine
    # prepare() is that image as the network reads it: the test set's pixels, scaled.
    np.testing.assert_allclose(lenet_model.prepare(image), test_data[0][0], atol=1e-6)


def test_weights_round_trip_through_safetensors(lenet_model, test_data, tmp_path):
    path = tmp_path / "lenet.safetensors"
    lenet_model.save(path)
    again = myelin.Model.load(path, threads=2)
    assert again.class_names == CLASS_NAMES
    for name, w in lenet_model.weights().items():
        np.testing.assert_array_equal(again.weights()[name], w)
    x = test_data[0][:50]
    np.testing.assert_array_equal(again.forward(x), lenet_model.forward(x))
    # The network given by name with the weights beside it: the same model.
    by_name = myelin.Model.load("lenet", weights=path, threads=2, batch=16)
    np.testing.assert_allclose(by_name.forward(x), lenet_model.forward(x), rtol=1e-5, atol=1e-6)


def test_bundle_opens_and_a_truncated_one_is_a_data_error(lenet_run, lenet_model, test_data,
                                                          tmp_path):
    bundle = tmp_path / "lenet.tar.gz"
    info = myelin.write_bundle(lenet_run[0].out_dir, bundle)
    assert info["network"] == "lenet"
    model = myelin.Model.load(bundle, threads=2)
    assert model.class_names == CLASS_NAMES
    x = test_data[0][:10]
    np.testing.assert_array_equal(model.forward(x), lenet_model.forward(x))
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(bundle.read_bytes()[: bundle.stat().st_size // 2])
    with pytest.raises(myelin.DataError) as e:
        myelin.Model.load(truncated)
    assert str(truncated) in str(e.value) and e.value.path == str(truncated)
    with pytest.raises(myelin.DataError, match="no such file"):
        myelin.Model.load(tmp_path / "missing.tar.gz")
    # The same bundle from its bytes; a truncated one names the buffer, not a temporary file.
    in_memory = myelin.Model.load(bundle.read_bytes(), threads=2)
    assert in_memory.class_names == CLASS_NAMES
    np.testing.assert_array_equal(in_memory.forward(x), model.forward(x))
    with pytest.raises(myelin.DataError, match="^bundle in memory: ") as e:
        myelin.Model.load(truncated.read_bytes())
    assert e.value.path == "bundle in memory"


def test_bad_input_is_a_clear_error(lenet_model):
    with pytest.raises(myelin.ShapeError, match=r"\[2, 3, 28, 28\].*\[N, 1, 28, 28\]"):
        lenet_model.forward(np.zeros((2, 3, 28, 28), np.float32))
    with pytest.raises(ValueError, match=r"\[N, 1, 28, 28\]"):  # ShapeError is a ValueError
        lenet_model.forward(np.zeros((1, 28, 28), np.float32))
    with pytest.raises(TypeError, match="x must be an array of numbers"):
        lenet_model.forward("pixels")
    with pytest.raises(myelin.DataError, match="not a PNG or JPEG image"):
        lenet_model.classify(b"plain text, no image")
