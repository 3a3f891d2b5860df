"""myelin.Network: standard networks, YAML text, sizes and costs, parse errors."""

import pytest

import myelin

TINY = """
name: tiny
input: [1, 28, 28]
classes: 10
train: {solver: adam, lr: 0.001, batch: 32}
layers:
  - fc: {name: ip1, outputs: 64}
  - relu: {name: relu1}
  - fc: {name: ip2, outputs: 10}
"""


def test_standard_network_shape_classes_and_costs():
    net = myelin.Network.load("lenet")
    assert "lenet" in myelin.standard_networks()
    assert net.input_shape == (1, 28, 28)
    assert net.classes == 10
    layers = {l["name"]: l for l in net.layers()}
    assert layers["conv1"]["output"] == (20, 24, 24)
    assert layers["conv1"]["params"] == 20 * 1 * 5 * 5 + 20
    assert layers["ip1"]["params"] == 50 * 4 * 4 * 500 + 500
    # A convolution's FLOPs: a multiply-add (2) per weight per output value, and the bias add.
    assert layers["conv1"]["flops"] == 20 * 24 * 24 * (2 * 25 + 1)
    assert net.params == sum(l["params"] for l in layers.values())
    assert net.flops == sum(l["flops"] for l in layers.values())
    assert "conv1" in net.describe() and "ip2" in net.describe()


def test_yaml_text_round_trip_and_recipe():
    net = myelin.Network.from_yaml(TINY)
    assert net.name == "tiny"
    assert net.recipe["solver"] == "adam" and net.recipe["batch"] == 32
    again = myelin.Network.from_yaml(net.to_yaml())
    assert again.layers() == net.layers()
    assert again.params == 28 * 28 * 64 + 64 + 64 * 10 + 10


def test_parse_error_names_line_and_field():
    bad = TINY.replace("outputs: 64", "outputs: -3")
    with pytest.raises(myelin.ParseError) as e:
        myelin.Network.from_yaml(bad, "tiny.yaml")
    assert e.value.file == "tiny.yaml"
    assert e.value.line == 1 + bad.splitlines().index("  - fc: {name: ip1, outputs: -3}")
    assert "outputs" in str(e.value)
    assert isinstance(e.value, ValueError) and isinstance(e.value, myelin.Error)


def test_unknown_network_is_a_clear_error():
    with pytest.raises(myelin.UsageError, match="unknown network 'no-such-net'"):
        myelin.Network.load("no-such-net")
