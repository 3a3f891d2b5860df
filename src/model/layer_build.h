// How each layer type becomes graph ops (model/layer_build.cpp). Internal to src/model.
#pragma once
#include <vector>

#include "model/network.h"

namespace myelin::layer_build {

using In = const std::vector<ValueId>&;

ValueId conv(Graph& g, const LayerSpec& l, In in);
ValueId deconv(Graph& g, const LayerSpec& l, In in);
ValueId pool(Graph& g, const LayerSpec& l, In in);
ValueId activation(Graph& g, const LayerSpec& l, In in);  // op = the layer type
ValueId lrn(Graph& g, const LayerSpec& l, In in);
ValueId dropout(Graph& g, const LayerSpec& l, In in);
ValueId fc(Graph& g, const LayerSpec& l, In in);
ValueId batch_norm(Graph& g, const LayerSpec& l, In in);
ValueId recurrent(Graph& g, const LayerSpec& l, In in);  // lstm, gru, rnn
ValueId embedding(Graph& g, const LayerSpec& l, In in);
ValueId softmax(Graph& g, const LayerSpec& l, In in);
ValueId add(Graph& g, const LayerSpec& l, In in);
ValueId mul(Graph& g, const LayerSpec& l, In in);
ValueId concat(Graph& g, const LayerSpec& l, In in);
ValueId flatten(Graph& g, const LayerSpec& l, In in);
ValueId reshape(Graph& g, const LayerSpec& l, In in);

}  // namespace myelin::layer_build
