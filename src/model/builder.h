// Networks in C++, for programs that embed Myelin. A NetBuilder makes the same NetworkSpec as
// the network file with the same layers (so the same graph), checked the same way:
//
//   NetBuilder b("lenet", {1, 28, 28}, 10);
//   b.conv("conv1", 20, 5).max_pool("pool1", 2).conv("conv2", 50, 5).max_pool("pool2", 2)
//       .fc("ip1", 500).relu("relu1").fc("ip2", 10);
//   NetworkSpec spec = b.spec();
//
// Each layer reads the previous one unless from() names its inputs (a DAG):
//   b.conv("a", 64, 3, {.pad = 1}).batch_norm("a_bn").from({"a_bn", "x"}).add("res");
// A bad value throws ParseError naming "NAME (C++ builder)", the layer's position and the key.
#pragma once
#include <string>
#include <vector>

#include "model/network.h"

namespace myelin {

// A 2-D size: k means (k, k).
struct Pair {
  int64_t h, w;
  Pair(int64_t k) : h(k), w(k) {}  // NOLINT: implicit on purpose, b.conv("c", 20, 5)
  Pair(int64_t h_, int64_t w_) : h(h_), w(w_) {}
};

struct ConvOptions {
  Pair stride = 1, pad = 0, dilation = 1;
  int64_t groups = 1;
  Pair output_padding = 0;  // deconv only
  bool bias = true;
  Init init = {"xavier"};
  Init bias_init = {"constant", 0.0};
  double lr_mult = 1, decay_mult = 1, bias_lr_mult = 1, bias_decay_mult = 1;
};

struct FcOptions {
  bool bias = true;
  Init init = {"xavier"};
  Init bias_init = {"constant", 0.0};
  double lr_mult = 1, decay_mult = 1, bias_lr_mult = 1, bias_decay_mult = 1;
};

struct PoolOptions {
  Pair stride = 0;  // 0: the kernel
  Pair pad = 0;
  bool ceil_mode = false;
  bool count_include_pad = true;  // average pooling
};

struct BatchNormOptions {
  double eps = 1e-5, momentum = 0.9;
  Init gamma_init = {"constant", 1.0};
  Init beta_init = {"constant", 0.0};
  double lr_mult = 1, decay_mult = 1;
};

class NetBuilder {
 public:
  NetBuilder(std::string name, Dims input, int64_t classes);

  NetBuilder& description(std::string text);
  NetBuilder& recipe(const Recipe& r);
  Recipe& recipe() { return spec_.recipe; }

  // The inputs of the next layer (layer names or "data"); default: the previous layer.
  NetBuilder& from(std::vector<std::string> inputs);

  NetBuilder& conv(std::string name, int64_t filters, Pair kernel, const ConvOptions& o = {});
  NetBuilder& deconv(std::string name, int64_t filters, Pair kernel, const ConvOptions& o = {});
  NetBuilder& max_pool(std::string name, Pair kernel, const PoolOptions& o = {});
  NetBuilder& avg_pool(std::string name, Pair kernel, const PoolOptions& o = {});
  NetBuilder& global_avg_pool(std::string name);
  NetBuilder& global_max_pool(std::string name);
  NetBuilder& relu(std::string name);
  NetBuilder& leaky_relu(std::string name, double alpha = 0.01);
  NetBuilder& sigmoid(std::string name);
  NetBuilder& tanh(std::string name);
  NetBuilder& elu(std::string name, double alpha = 1.0);
  NetBuilder& gelu(std::string name);
  NetBuilder& lrn(std::string name, int64_t size = 5, double alpha = 1e-4, double beta = 0.75,
                  double k = 1.0);
  NetBuilder& dropout(std::string name, double ratio = 0.5);
  NetBuilder& fc(std::string name, int64_t outputs, const FcOptions& o = {});
  NetBuilder& batch_norm(std::string name, const BatchNormOptions& o = {});
  NetBuilder& softmax(std::string name);
  NetBuilder& add(std::string name, std::vector<std::string> inputs);
  NetBuilder& mul(std::string name, std::vector<std::string> inputs);
  NetBuilder& concat(std::string name, std::vector<std::string> inputs, int64_t axis = 1);
  NetBuilder& flatten(std::string name, int64_t axis = 1);
  NetBuilder& reshape(std::string name, Dims shape);
  // Any layer type with the network file's keys, e.g. layer("pool", "p", {{"global", "avg"}}).
  NetBuilder& layer(std::string type, std::string name, Attrs attrs,
                    std::vector<std::string> inputs = {});

  // The canonical spec; throws ParseError for a network that does not build.
  NetworkSpec spec() const;
  BuiltNetwork build(int64_t batch, bool training, double label_smoothing = 0.0) const;

 private:
  NetworkSpec spec_;
  std::vector<std::string> next_inputs_;
};

}  // namespace myelin
