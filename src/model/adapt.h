// Fitting a network to a dataset: a standard network (LeNet for 28x28 gray images, 10 classes)
// given another dataset's input shape and class count, so `myelin serve` can train any network on
// any dataset without the user editing the network file.
#pragma once
#include <cstdint>

#include "model/network.h"

namespace myelin {

// The spec with input = `input` ([C, H, W], or whatever rank the network takes) and classes =
// `classes`, its logits layer retargeted: the conv/fc that produces the logits (walking back from
// the last layer through layers that keep the channel count: activations, pooling, dropout,
// batch norm, flatten) has its `filters`/`outputs` set to `classes`. Layers read their input
// shapes, so the first convolution follows the new channel count by itself. Where the channels
// change, a per-channel `train.mean` becomes the average of its values, and a `train.crop` that no
// longer matches the input is dropped (the dataset's images are the input size).
//
// The result is checked by building it at batch 1. A network that cannot take the shape throws
// ShapeError: "network 'lenet' takes [1, 28, 28]; the dataset gives [3, 8, 8]: <why>", and an
// unchanged shape and class count returns the spec as it is.
NetworkSpec adapt_network(const NetworkSpec& spec, const Dims& input, int64_t classes);

}  // namespace myelin
