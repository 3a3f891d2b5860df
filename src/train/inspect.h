// Pictures of what a network has learned, as PNG bytes for the web UI: a convolution's filters,
// and a layer's output channels for one image.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/network.h"
#include "train/evaluate.h"

namespace myelin {

// The filters of the conv layer `layer` (default: the network's first conv layer) from `weights`
// (a .safetensors file, snapshot or run directory, as EvalOptions::weights), tiled in a grid with
// 1-pixel gaps. Each filter is normalised on its own (its minimum black, its maximum white) and
// upscaled by a whole factor to about 24 pixels a side (5x5 -> 25x25). Filters over 3 channels
// are shown in color, over 1 in gray; over any other number of channels one row per filter, one
// gray tile per input channel. Throws Error naming the network's conv layers when `layer` is
// unknown or not a conv layer, DataError when the weights lack it.
std::vector<uint8_t> filters_png(const NetworkSpec& spec, const std::string& weights,
                                 const std::string& layer = "");

// One image (PNG or JPEG bytes) through the network in inference mode; the output of `layer`
// ([C, H, W]: one tile per channel; [F] features: one 1x1 tile each) tiled as a grayscale grid,
// upscaled by a whole factor to about 24 pixels a side, 1-pixel gaps. The whole layer shares
// one normalisation (its minimum black, its maximum white), so weak and dead channels show as
// such. Throws Error listing the layer names when `layer` is unknown.
std::vector<uint8_t> activations_png(const ClassifyOptions& o,
                                     const std::vector<uint8_t>& encoded_image,
                                     const std::string& layer);

}  // namespace myelin
