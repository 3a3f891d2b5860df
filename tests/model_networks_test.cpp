// The standard networks in models/: they load by name, build with the expected shapes and
// parameter counts, carry their initialization and recipes, and survive a write/read round trip.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "core/autodiff.h"
#include "core/error.h"
#include "core/op_registry.h"
#include "model/network.h"

using namespace myelin;

namespace {

int64_t param_count(const Graph& g) {
  int64_t n = 0;
  for (ValueId p : g.params()) n += g.value(p).shape.numel();
  return n;
}

const Value& value(const Graph& g, const std::string& name) {
  ValueId v = g.find(name);
  if (v == kNoValue) throw Error("no value named " + name);
  return g.value(v);
}

Shape shape_of(const Graph& g, const std::string& name) {
  return value(g, name).shape;
}

int count_ops(const Graph& g, const std::string& op) {
  int n = 0;
  for (const Node& node : g.nodes()) n += node.op == op;
  return n;
}

}  // namespace

TEST(StandardNetworks, AreListedAndLoadByName) {
  auto names = standard_networks();
  for (const char* n : {"alexnet", "lenet", "mlp", "resnet", "resnet50", "resnet9"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), n), names.end()) << n;
    NetworkSpec s = load_network(n);
    EXPECT_EQ(s.name, n);
    EXPECT_NE(s.file.find("models/" + std::string(n) + ".yaml"), std::string::npos) << s.file;
    EXPECT_FALSE(s.description.empty()) << n;
  }
}

TEST(StandardNetworks, LeNetIsCaffes) {
  NetworkSpec s = load_network("lenet");
  EXPECT_EQ(s.input, (Dims{1, 28, 28}));
  EXPECT_EQ(s.classes, 10);
  BuiltNetwork net = build_network(s, 64, true);
  const Graph& g = net.graph;
  EXPECT_EQ(param_count(g), 431080);
  EXPECT_EQ(net.layer_names,
            (std::vector<std::string>{"conv1", "pool1", "conv2", "pool2", "ip1", "relu1", "ip2"}));
  EXPECT_EQ(g.value(net.data).shape, (Shape{64, 1, 28, 28}));
  EXPECT_EQ(g.value(net.label).shape, (Shape{64}));
  EXPECT_EQ(g.value(net.label).dtype, DType::i32);
  EXPECT_EQ(shape_of(g, "conv1"), (Shape{64, 20, 24, 24}));
  EXPECT_EQ(shape_of(g, "pool1"), (Shape{64, 20, 12, 12}));
  EXPECT_EQ(shape_of(g, "conv2"), (Shape{64, 50, 8, 8}));
  EXPECT_EQ(shape_of(g, "pool2"), (Shape{64, 50, 4, 4}));
  EXPECT_EQ(shape_of(g, "ip1"), (Shape{64, 500}));
  EXPECT_EQ(g.value(net.logits).shape, (Shape{64, 10}));
  EXPECT_EQ(g.value(net.logits).name, "ip2");
  EXPECT_EQ(shape_of(g, "conv2.weight"), (Shape{50, 20, 5, 5}));
  EXPECT_EQ(shape_of(g, "ip1.weight"), (Shape{500, 800}));
  // Caffe's LeNet: Xavier weights, zero biases at twice the learning rate.
  EXPECT_EQ(value(g, "conv1.weight").init.kind, "xavier");
  EXPECT_EQ(value(g, "ip2.bias").init.kind, "constant");
  EXPECT_EQ(value(g, "ip2.bias").lr_mult, 2.0);
  EXPECT_EQ(value(g, "ip2.weight").lr_mult, 1.0);
  EXPECT_EQ(s.recipe.solver, "sgd");
  EXPECT_EQ(s.recipe.batch, 64);
  EXPECT_DOUBLE_EQ(s.recipe.scale, 1.0 / 255);
}

TEST(StandardNetworks, LossAndAccuracyAreKeptAfterTheLastLayer) {
  BuiltNetwork net = build_network(load_network("lenet"), 8, true, 0.1);
  const Graph& g = net.graph;
  EXPECT_EQ(g.value(net.loss).name, "loss");
  EXPECT_EQ(g.value(net.loss).shape, Shape{});
  EXPECT_TRUE(g.is_kept(net.loss));
  EXPECT_TRUE(g.is_kept(net.top1));
  EXPECT_TRUE(g.is_kept(net.top5));
  const Node& loss = g.nodes()[g.value(net.loss).producer];
  EXPECT_EQ(loss.op, "softmax_cross_entropy");
  EXPECT_DOUBLE_EQ(loss.attrs.f("label_smoothing", 0), 0.1);
  EXPECT_EQ(g.nodes()[g.value(net.top5).producer].attrs.i("k", 0), 5);
  EXPECT_EQ(g.nodes()[g.value(net.top1).producer].attrs.i("k", 0), 1);
}

TEST(StandardNetworks, AlexNetHasTheIlsvrc2012Layers) {
  NetworkSpec s = load_network("alexnet");
  BuiltNetwork net = build_network(s, 2, true);
  const Graph& g = net.graph;
  int64_t params = param_count(g);
  EXPECT_EQ(params, 60965224);  // about 60.97M with two groups in conv2, conv4, conv5
  EXPECT_EQ(g.value(net.data).shape, (Shape{2, 3, 227, 227}));
  EXPECT_EQ(shape_of(g, "conv1"), (Shape{2, 96, 55, 55}));
  EXPECT_EQ(shape_of(g, "pool1"), (Shape{2, 96, 27, 27}));
  EXPECT_EQ(shape_of(g, "conv2"), (Shape{2, 256, 27, 27}));
  EXPECT_EQ(shape_of(g, "pool2"), (Shape{2, 256, 13, 13}));
  EXPECT_EQ(shape_of(g, "conv4.weight"), (Shape{384, 192, 3, 3}));
  EXPECT_EQ(shape_of(g, "conv5"), (Shape{2, 256, 13, 13}));
  EXPECT_EQ(shape_of(g, "pool5"), (Shape{2, 256, 6, 6}));
  EXPECT_EQ(shape_of(g, "fc6.weight"), (Shape{4096, 9216}));
  EXPECT_EQ(g.value(net.logits).shape, (Shape{2, 1000}));
  EXPECT_EQ(count_ops(g, "lrn"), 2);
  EXPECT_EQ(count_ops(g, "dropout"), 2);
  // Caffe's initialization and multipliers.
  EXPECT_EQ(value(g, "conv1.weight").init.kind, "gaussian");
  EXPECT_DOUBLE_EQ(value(g, "conv1.weight").init.value, 0.01);
  EXPECT_DOUBLE_EQ(value(g, "fc6.weight").init.value, 0.005);
  EXPECT_DOUBLE_EQ(value(g, "fc8.weight").init.value, 0.01);
  EXPECT_DOUBLE_EQ(value(g, "conv2.bias").init.value, 0.1);
  EXPECT_DOUBLE_EQ(value(g, "conv3.bias").init.value, 0.0);
  EXPECT_DOUBLE_EQ(value(g, "fc7.bias").init.value, 0.1);
  EXPECT_DOUBLE_EQ(value(g, "fc8.bias").init.value, 0.0);
  EXPECT_EQ(value(g, "conv1.bias").lr_mult, 2.0);
  EXPECT_EQ(value(g, "conv1.bias").decay_mult, 0.0);
  EXPECT_EQ(value(g, "conv1.weight").decay_mult, 1.0);
  const Node& norm1 = g.nodes()[value(g, "norm1").producer];
  EXPECT_EQ(norm1.attrs.i("size", 0), 5);
  EXPECT_DOUBLE_EQ(norm1.attrs.f("alpha", 0), 1e-4);
  EXPECT_DOUBLE_EQ(norm1.attrs.f("beta", 0), 0.75);
  EXPECT_EQ(s.recipe.lr_policy, "step");
  EXPECT_EQ(s.recipe.step_size, 100000);
  EXPECT_EQ(s.recipe.crop, 227);
  EXPECT_TRUE(s.recipe.mirror);
  EXPECT_EQ(s.recipe.mean.size(), 3u);
}

TEST(StandardNetworks, InferenceGraphsDropDropoutAndUseRunningStatistics) {
  BuiltNetwork alex = build_network(load_network("alexnet"), 1, false);
  EXPECT_EQ(count_ops(alex.graph, "dropout"), 0);
  BuiltNetwork res = build_network(load_network("resnet"), 4, false);
  for (const Node& n : res.graph.nodes())
    if (n.op == "batch_norm") {
      EXPECT_EQ(n.attrs.i("training", 1), 0) << n.name;
      EXPECT_EQ(n.outputs.size(), 1u) << n.name;
    }
  BuiltNetwork train = build_network(load_network("resnet"), 4, true);
  for (const Node& n : train.graph.nodes())
    if (n.op == "batch_norm") {
      EXPECT_EQ(n.outputs.size(), 3u) << n.name;
    }
}

TEST(StandardNetworks, ResNetHasResidualAddsAndBatchNormState) {
  BuiltNetwork net = build_network(load_network("resnet"), 16, true);
  const Graph& g = net.graph;
  EXPECT_EQ(param_count(g), 66802);
  EXPECT_EQ(count_ops(g, "add"), 2);
  EXPECT_EQ(shape_of(g, "res1"), (Shape{16, 24, 14, 14}));
  EXPECT_EQ(shape_of(g, "res2"), (Shape{16, 48, 7, 7}));
  EXPECT_EQ(shape_of(g, "res2_proj.weight"), (Shape{48, 24, 1, 1}));
  EXPECT_EQ(g.find("conv1.bias"), kNoValue);  // convolutions before batch norm have no bias
  EXPECT_EQ(value(g, "conv1.weight").init.kind, "msra");
  EXPECT_EQ(value(g, "bn1.gamma").kind, ValueKind::param);
  EXPECT_EQ(value(g, "bn1.gamma").init.value, 1.0);
  EXPECT_EQ(value(g, "bn1.beta").kind, ValueKind::param);
  EXPECT_EQ(value(g, "bn1.running_mean").kind, ValueKind::state);
  EXPECT_EQ(value(g, "bn1.running_var").kind, ValueKind::state);
  EXPECT_EQ(value(g, "bn1.running_var").init.value, 1.0);
  EXPECT_EQ(shape_of(g, "bn1.running_mean"), (Shape{24}));
}

// torchvision's resnet50 (v1.5): the same parameter count, the stride on the 3x3 of each
// downsampling block, Goyal et al.'s zero-initialised last scale of each block, and no weight
// decay on batch norm or biases.
TEST(StandardNetworks, ResNet50IsTorchvisions) {
  NetworkSpec s = load_network("resnet50");
  BuiltNetwork net = build_network(s, 2, true);
  const Graph& g = net.graph;
  EXPECT_EQ(param_count(g), 25557032);
  EXPECT_EQ(g.value(net.data).shape, (Shape{2, 3, 224, 224}));
  EXPECT_EQ(g.value(net.logits).shape, (Shape{2, 1000}));
  EXPECT_EQ(count_ops(g, "conv2d"), 53);
  EXPECT_EQ(count_ops(g, "batch_norm"), 53);
  EXPECT_EQ(count_ops(g, "add"), 16);
  EXPECT_EQ(shape_of(g, "maxpool"), (Shape{2, 64, 56, 56}));
  EXPECT_EQ(shape_of(g, "layer1_2"), (Shape{2, 256, 56, 56}));
  EXPECT_EQ(shape_of(g, "layer2_0_conv1"), (Shape{2, 128, 56, 56}));  // v1.5: the 1x1 keeps 56
  EXPECT_EQ(shape_of(g, "layer2_0_conv2"), (Shape{2, 128, 28, 28}));  // and the 3x3 strides
  EXPECT_EQ(shape_of(g, "layer2_0_down.weight"), (Shape{512, 256, 1, 1}));
  EXPECT_EQ(shape_of(g, "layer3_5"), (Shape{2, 1024, 14, 14}));
  EXPECT_EQ(shape_of(g, "layer4_2"), (Shape{2, 2048, 7, 7}));
  EXPECT_EQ(shape_of(g, "avgpool"), (Shape{2, 2048, 1, 1}));
  EXPECT_EQ(shape_of(g, "fc.weight"), (Shape{1000, 2048}));
  for (const char* bn : {"layer1_0_bn3", "layer2_3_bn3", "layer4_2_bn3"})
    EXPECT_EQ(value(g, std::string(bn) + ".gamma").init.value, 0.0) << bn;
  for (const char* bn : {"bn1", "layer1_0_bn2", "layer1_0_down_bn"})
    EXPECT_EQ(value(g, std::string(bn) + ".gamma").init.value, 1.0) << bn;
  for (const char* p : {"bn1.gamma", "layer3_1_bn2.beta", "fc.bias"})
    EXPECT_EQ(value(g, p).decay_mult, 0.0) << p;
  for (const char* p : {"conv1.weight", "layer3_1_conv2.weight", "fc.weight"})
    EXPECT_EQ(value(g, p).decay_mult, 1.0) << p;
  EXPECT_EQ(s.recipe.solver, "sgd");
  EXPECT_DOUBLE_EQ(s.recipe.lr, 0.1 * double(s.recipe.batch) / 256);
  EXPECT_EQ(s.recipe.warmup_iters, 5 * (1281167 / s.recipe.batch));  // 5 ImageNet epochs
  EXPECT_DOUBLE_EQ(s.recipe.weight_decay, 5e-5);
  EXPECT_DOUBLE_EQ(s.recipe.label_smoothing, 0.1);
  EXPECT_EQ(s.recipe.lr_policy, "cosine");
}

// The zero-init is one value in the file that every block's last batch norm refers to.
TEST(StandardNetworks, ResNet50ZeroInitIsOneSwitch) {
  NetworkSpec s = load_network("resnet50");
  std::ifstream in(s.file);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string zero = "{name: layer1_0_bn3, gamma_init: &last_gamma 0}";
  ASSERT_NE(text.find(zero), std::string::npos);
  text.replace(text.find(zero), zero.size(), "{name: layer1_0_bn3, gamma_init: &last_gamma 1}");
  BuiltNetwork net = build_network(parse_network(text, "resnet50-one.yaml"), 1, true);
  int last_scales = 0;
  for (ValueId p : net.graph.params()) {
    const Value& v = net.graph.value(p);
    if (!v.name.ends_with("_bn3.gamma")) continue;
    ++last_scales;
    EXPECT_EQ(v.init.value, 1.0) << v.name;
  }
  EXPECT_EQ(last_scales, 16);
}

TEST(StandardNetworks, ParameterCountsAndShapes) {
  struct Expect {
    const char* name;
    int64_t params;
    Shape before_logits;
  };
  for (const Expect& e :
       {Expect{"mlp", 535818, Shape{3, 256}}, Expect{"resnet9", 6571978, Shape{3, 512, 1, 1}}}) {
    NetworkSpec s = load_network(e.name);
    BuiltNetwork net = build_network(s, 3, true);
    EXPECT_EQ(param_count(net.graph), e.params) << e.name;
    const std::string& last_hidden = net.layer_names[net.layer_names.size() - 2];
    EXPECT_EQ(shape_of(net.graph, last_hidden), e.before_logits) << e.name;
    EXPECT_EQ(net.graph.value(net.logits).shape, (Shape{3, 10})) << e.name;
  }
}

TEST(StandardNetworks, EveryParameterGetsAGradient) {
  for (const std::string& name : standard_networks()) {
    BuiltNetwork net = build_network(load_network(name), 2, true);
    std::vector<ValueId> params = net.graph.params();
    auto grads = differentiate(net.graph, net.loss, params);
    EXPECT_EQ(grads.size(), params.size()) << name;
    for (auto [p, dp] : grads)
      EXPECT_EQ(net.graph.value(p).shape, net.graph.value(dp).shape) << net.graph.value(p).name;
  }
}

TEST(StandardNetworks, CostsArePerExample) {
  NetworkCost c = network_cost(load_network("lenet"));
  EXPECT_EQ(c.params, 431080);
  // conv1 2*20*24*24*25, conv2 2*50*8*8*500, ip1 2*500*800, ip2 2*10*500 (+ biases, pooling).
  EXPECT_GT(c.flops, 4590000);
  EXPECT_LT(c.flops, 4650000);
  ASSERT_EQ(c.layers.size(), 7u);
  EXPECT_EQ(c.layers[0].name, "conv1");
  EXPECT_EQ(c.layers[0].params, 520);
  EXPECT_EQ(c.layers[0].flops, 20 * 24 * 24 * 51);
  EXPECT_EQ(c.layers[2].params, 25050);
  NetworkCost alex = network_cost(load_network("alexnet"));
  EXPECT_GT(alex.flops, 1.3e9);
  EXPECT_LT(alex.flops, 1.6e9);
  std::string table = describe_network(load_network("lenet"));
  EXPECT_NE(table.find("conv2"), std::string::npos) << table;
  EXPECT_NE(table.find("431080"), std::string::npos) << table;
}

// The layer table counts each layer's nodes by their ops' rules (op_flops): LeNet's conv1 and ip1
// by hand, and the table's total is the inference graph's layers' sum.
TEST(StandardNetworks, CostsAreTheOpsFlops) {
  NetworkSpec spec = load_network("lenet");
  NetworkCost c = network_cost(spec);
  auto layer = [&](const std::string& name) {
    for (const LayerCost& l : c.layers)
      if (l.name == name) return l;
    ADD_FAILURE() << "no layer " << name;
    return LayerCost{};
  };
  // conv1: 20 maps of 24x24 from 1x5x5 taps, plus the bias; ip1: 500 outputs of 800 inputs.
  EXPECT_EQ(layer("conv1").flops, 20 * 24 * 24 * (2 * 1 * 5 * 5 + 1));
  EXPECT_EQ(layer("ip1").flops, 500 * (2 * 800 + 1));
  BuiltNetwork net = build_network(spec, 1, false);
  std::set<std::string> layers(net.layer_names.begin(), net.layer_names.end());
  double sum = 0;
  for (const Node& n : net.graph.nodes())
    if (layers.count(n.name)) sum += op_flops(net.graph, n);
  EXPECT_EQ(static_cast<double>(c.flops), sum);
}

TEST(StandardNetworks, SurviveAWriteReadRoundTrip) {
  for (const std::string& name : standard_networks()) {
    NetworkSpec s = load_network(name);
    std::string text = write_network(s);
    NetworkSpec back = parse_network(text, name + ".written.yaml");
    EXPECT_TRUE(equivalent(s, back)) << name << ":\n" << text;
  }
}

TEST(FindingNetworks, EnvironmentDirectoryComesFirst) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("myelin_models_" + std::to_string(getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "tiny.yaml") << "input: [4]\nclasses: 3\nlayers:\n  - fc: {outputs: 3}\n";
  setenv("MYELIN_MODELS", dir.c_str(), 1);
  NetworkSpec s = load_network("tiny");
  EXPECT_EQ(s.name, "tiny");  // from the file name
  EXPECT_EQ(s.layers.at(0).name, "fc1");
  auto names = standard_networks();
  EXPECT_NE(std::find(names.begin(), names.end(), "tiny"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "lenet"), names.end());
  NetworkSpec by_path = load_network((dir / "tiny.yaml").string());
  EXPECT_TRUE(equivalent(s, by_path));
  unsetenv("MYELIN_MODELS");
  fs::remove_all(dir);
}

TEST(FindingNetworks, UnknownNamesListTheStandardNetworks) {
  try {
    load_network("lenett");
    FAIL() << "expected an error";
  } catch (const UsageError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("'lenett'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("alexnet, char-lstm, lenet, lstm-fmnist, mlp, resnet, resnet50, resnet9"),
              std::string::npos)
        << msg;
  }
  try {
    load_network("no/such/lenet.yaml");
    FAIL() << "expected an error";
  } catch (const ParseError& e) {
    EXPECT_EQ(e.file(), "no/such/lenet.yaml");
    EXPECT_NE(std::string(e.what()).find("no such file"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("standard network is named 'lenet'"), std::string::npos)
        << e.what();
  }
}
