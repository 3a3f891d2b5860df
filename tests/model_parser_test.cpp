// Network files: the format's features, errors that name the file, line and field for broken
// files, and the C++ builder making the same network as the file.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "model/builder.h"
#include "model/network.h"

using namespace myelin;

namespace {

const char* kHeader = "name: t\ninput: [1, 28, 28]\nclasses: 10\nlayers:\n";  // 4 lines

// The error a broken file gives; fails the test when it parses.
ParseError error_of(const std::string& text) {
  try {
    parse_network(text, "bad.yaml");
  } catch (const ParseError& e) {
    return e;
  }
  ADD_FAILURE() << "parsed without error:\n" << text;
  return ParseError("", -1, "", "");
}

// Expects a ParseError at `line` about `field` whose message holds `says`.
void expect_error(const std::string& text, int line, const std::string& field,
                  const std::string& says) {
  ParseError e = error_of(text);
  EXPECT_EQ(e.file(), "bad.yaml");
  EXPECT_EQ(e.line(), line) << e.what() << "\n" << text;
  EXPECT_EQ(e.field(), field) << e.what();
  EXPECT_NE(std::string(e.what()).find(says), std::string::npos)
      << "message: " << e.what() << "\nexpected to contain: " << says;
}

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

// --- The format ---

TEST(NetworkFile, ShorthandsDefaultsAndDefaultNames) {
  NetworkSpec s = parse_network(R"(
name: demo
input: [3, 32, 32]
classes: 10
defaults:
  conv: {kernel: 3, pad: 1, bias: false, init: msra}
layers:
  - conv: {filters: 8}
  - relu
  - conv: {filters: 8, init: {gaussian: 0.02}}
  - relu:
  - pool: {max: 2}
  - inner_product: {outputs: 10, bias_init: 0.1}
)",
                                "demo.yaml");
  ASSERT_EQ(s.layers.size(), 6u);
  EXPECT_EQ(s.layers[0].name, "conv1");
  EXPECT_EQ(s.layers[1].name, "relu1");
  EXPECT_EQ(s.layers[2].name, "conv2");
  EXPECT_EQ(s.layers[3].name, "relu2");
  EXPECT_EQ(s.layers[5].type, "fc");
  EXPECT_EQ(s.layers[0].line, 8);
  EXPECT_EQ(s.layers[2].attrs.s("init", ""), "gaussian(0.02)");
  EXPECT_EQ(s.layers[0].attrs.s("init", ""), "msra");
  EXPECT_EQ(s.layers[0].attrs.i("bias", 1), 0);
  EXPECT_EQ(s.layers[4].attrs.i("kernel", 0), 2);
  BuiltNetwork net = build_network(s, 2, true);
  const Graph& g = net.graph;
  EXPECT_EQ(g.value(g.find("pool1")).shape, (Shape{2, 8, 16, 16}));
  EXPECT_EQ(g.value(g.find("conv2.weight")).init.kind, "gaussian");
  EXPECT_DOUBLE_EQ(g.value(g.find("conv2.weight")).init.value, 0.02);
  EXPECT_EQ(g.find("conv2.bias"), kNoValue);
  EXPECT_DOUBLE_EQ(g.value(g.find("fc1.bias")).init.value, 0.1);
}

TEST(NetworkFile, DagsByNamedInputs) {
  NetworkSpec s = parse_network(std::string(kHeader) + R"(
  - conv: {name: a, filters: 4, kernel: 3, pad: 1}
  - conv: {name: b, filters: 4, kernel: 3, pad: 1}
  - add: {name: sum, input: [a, b]}
  - conv: {name: c, input: data, filters: 2, kernel: 1}
  - concat: {name: cat, input: [sum, c, a]}
  - mul: {name: sq, input: [cat, cat]}
  - pool: {name: gp, global: avg}
  - flatten: {name: flat}
  - fc: {name: out, outputs: 10}
)",
                                "dag.yaml");
  BuiltNetwork net = build_network(s, 2, true);
  const Graph& g = net.graph;
  EXPECT_EQ(g.value(g.find("sum")).shape, (Shape{2, 4, 28, 28}));
  EXPECT_EQ(g.value(g.find("cat")).shape, (Shape{2, 10, 28, 28}));
  EXPECT_EQ(g.value(g.find("gp")).shape, (Shape{2, 10, 1, 1}));
  EXPECT_EQ(g.value(g.find("flat")).shape, (Shape{2, 10}));
  EXPECT_EQ(g.value(g.find("out.weight")).shape, (Shape{10, 10}));
  // The convolution "b" reads "a", its previous layer, by default; "c" reads the data.
  const Node& b = g.nodes()[g.value(g.find("b")).producer];
  EXPECT_EQ(g.value(b.inputs[0]).name, "a");
  const Node& c = g.nodes()[g.value(g.find("c")).producer];
  EXPECT_EQ(b.name, "b");
  EXPECT_EQ(g.value(c.inputs[0]).name, "data");
}

TEST(NetworkFile, EveryLayerTypeBuilds) {
  NetworkSpec s = parse_network(R"(
input: [3, 16, 16]
classes: 5
train: {solver: adam, lr: 1e-3, lr_policy: multistep, milestones: [100, 200], scale: 1/255,
        mean: [120, 115, 100], mirror: yes, cutout: 8, test_mirror: yes}
layers:
  - conv:       {name: c1, filters: 8, kernel: [3, 5], stride: [1, 1], pad: [1, 2], dilation: 1}
  - batch_norm: {name: bn, eps: 0.001, momentum: 0.99}
  - leaky_relu: {alpha: 0.1}
  - elu
  - gelu
  - tanh
  - sigmoid
  - lrn:        {size: 3}
  - pool:       {mode: avg, kernel: 3, stride: 2, pad: 1, ceil_mode: false, count_include_pad: false}
  - deconv:     {name: up, filters: 4, kernel: 4, stride: 2, pad: 1, groups: 2}
  - dropout:    {ratio: 0.2}
  - reshape:    {shape: [4, 256]}
  - softmax
  - flatten
  - fc:         {outputs: 5, bias: false, init: uniform(0.05), lr_mult: 0.5, decay_mult: 0}
)",
                                "all.yaml");
  EXPECT_EQ(s.recipe.solver, "adam");
  EXPECT_DOUBLE_EQ(s.recipe.lr, 1e-3);
  EXPECT_DOUBLE_EQ(s.recipe.scale, 1.0 / 255);
  EXPECT_EQ(s.recipe.milestones, (std::vector<int64_t>{100, 200}));
  EXPECT_TRUE(s.recipe.mirror);
  EXPECT_EQ(s.recipe.cutout, 8);
  EXPECT_TRUE(s.recipe.test_mirror);
  BuiltNetwork net = build_network(s, 2, true);
  const Graph& g = net.graph;
  EXPECT_EQ(g.value(g.find("c1")).shape, (Shape{2, 8, 16, 16}));
  EXPECT_EQ(g.value(g.find("pool1")).shape, (Shape{2, 8, 8, 8}));
  EXPECT_EQ(g.value(g.find("up")).shape, (Shape{2, 4, 16, 16}));
  EXPECT_EQ(g.value(g.find("up.weight")).shape, (Shape{8, 2, 4, 4}));
  EXPECT_EQ(g.value(g.find("reshape1")).shape, (Shape{2, 4, 256}));
  EXPECT_EQ(g.value(g.find("fc1.weight")).decay_mult, 0.0);
  EXPECT_EQ(g.find("fc1.bias"), kNoValue);
  EXPECT_NE(g.find("top5"), kNoValue);
}

TEST(NetworkFile, AllConvolutionalNetworksEndInAFlattenedLogits) {
  NetworkSpec s = parse_network(std::string(kHeader) + R"(
  - conv: {filters: 10, kernel: 3}
  - pool: {global: avg}
)",
                                "nin.yaml");
  BuiltNetwork net = build_network(s, 4, false);
  EXPECT_EQ(net.graph.value(net.logits).shape, (Shape{4, 10}));
  EXPECT_EQ(net.graph.value(net.logits).name, "logits");
}

TEST(NetworkFile, LayerHelpListsEveryTypeWithItsKeysAndDefaults) {
  auto help = layer_help();
  auto conv = std::find_if(help.begin(), help.end(), [](auto& h) { return h.type == "conv"; });
  ASSERT_NE(conv, help.end());
  auto has = [&](const std::string& prefix) {
    return std::any_of(conv->keys.begin(), conv->keys.end(),
                       [&](const std::string& k) { return k.rfind(prefix, 0) == 0; });
  };
  EXPECT_TRUE(has("filters (required)"));
  EXPECT_TRUE(has("stride = 1:"));
  EXPECT_TRUE(has("bias = true:"));
  EXPECT_TRUE(has("init = xavier:"));
  EXPECT_EQ(help.size(), 23u);  // inner_product is fc's alias
}

// --- Broken files: file, line and field ---

TEST(NetworkFileErrors, UnknownLayerTypeListsTheKnownOnes) {
  expect_error(std::string(kHeader) + "  - relu\n  - convv: {filters: 3}\n", 6, "convv",
               "did you mean 'conv'");
  expect_error(std::string(kHeader) + "  - convv: {filters: 3}\n", 5, "convv",
               "known: add, batch_norm, concat, conv,");
}

TEST(NetworkFileErrors, UnknownKeyNamesTheAllowedKeys) {
  expect_error(std::string(kHeader) + "  - conv:\n      filters: 3\n      kernal: 3\n", 7, "kernal",
               "did you mean 'kernel'");
  expect_error(std::string(kHeader) + "  - relu: {name: r, slope: 2}\n", 5, "slope",
               "allowed: name, input)");
}

TEST(NetworkFileErrors, WrongTypes) {
  expect_error(std::string(kHeader) + "  - conv: {filters: 3, kernel: abc}\n", 5, "kernel",
               "expected an integer, got 'abc'");
  expect_error(std::string(kHeader) + "  - conv: {filters: [1, 2], kernel: 3}\n", 5, "filters",
               "expected an integer, got a list");
  expect_error(std::string(kHeader) + "  - conv: {filters: 3, kernel: [1, 2, 3]}\n", 5, "kernel",
               "an integer or [h, w]");
  expect_error(std::string(kHeader) + "  - conv: {filters: 3, kernel: 3, bias: maybe}\n", 5, "bias",
               "true or false");
  expect_error("name: t\ninput: [1, 28, x]\nclasses: 10\nlayers: [relu]\n", 2, "input",
               "expected an integer");
}

TEST(NetworkFileErrors, MissingRequiredFields) {
  expect_error(std::string(kHeader) + "  - relu\n  - conv: {kernel: 5}\n", 6, "filters",
               "needs 'filters'");
  expect_error(std::string(kHeader) + "  - pool: {stride: 2}\n", 5, "kernel", "max: K");
  expect_error("name: t\ninput: [1, 28, 28]\nlayers: [relu]\n", 1, "classes", "has no 'classes'");
  expect_error("name: t\ninput: [1, 28, 28]\nclasses: 10\nlayers: []\n", 4, "layers",
               "one or more layers");
}

TEST(NetworkFileErrors, ValuesOutOfRange) {
  expect_error(std::string(kHeader) + "  - dropout: {ratio: 1.5}\n", 5, "ratio",
               "'ratio' must be a number in 0..0.999");
  expect_error(std::string(kHeader) + "  - conv: {filters: 0, kernel: 3}\n", 5, "filters",
               "an integer in 1..");
  expect_error(std::string(kHeader) + "  - conv: {filters: 4, kernel: 3, init: glorot}\n", 5,
               "init", "unknown initializer 'glorot'");
  expect_error(std::string(kHeader) + "  - conv: {filters: 4, kernel: 3, init: gaussian}\n", 5,
               "init", "gaussian needs its std");
  expect_error(std::string(kHeader) + "  - pool: {max: 2, avg: 2}\n", 5, "avg",
               "only one of max, avg and global");
  expect_error(std::string(kHeader) +
                   "  - conv: {filters: 4, kernel: 3, bias: false, "
                   "bias_init: 1}\n",
               5, "bias_init", "bias: false");
}

TEST(NetworkFileErrors, InputsMustNameEarlierLayers) {
  expect_error(std::string(kHeader) +
                   "  - relu: {name: a}\n  - add: {name: s,\n"
                   "           input: [a, b]}\n  - relu: {name: b}\n",
               7, "input", "'b' is a later layer (line 8)");
  expect_error(std::string(kHeader) + "  - relu: {name: a}\n  - relu: {input: nope}\n", 6, "input",
               "unknown input 'nope' (earlier layers: data, a)");
  expect_error(std::string(kHeader) + "  - add: {name: s}\n", 5, "input",
               "takes 2 to 64 inputs, got 1 (name them");
}

TEST(NetworkFileErrors, DuplicateNamesAndKeys) {
  expect_error(std::string(kHeader) + "  - relu: {name: a}\n  - relu: {name: a}\n", 6, "name",
               "duplicate layer name 'a' (first at line 5)");
  expect_error(std::string(kHeader) + "  - conv: {filters: 4,\n           filters: 5, kernel: 3}\n",
               6, "filters", "given twice");
  expect_error(std::string(kHeader) + "  - relu: {name: data}\n", 5, "name", "reserved");
  expect_error(std::string(kHeader) + "  - relu: {name: a.b}\n", 5, "name", "no dots");
}

TEST(NetworkFileErrors, ShapeErrorsCarryTheLayersLine) {
  expect_error(std::string(kHeader) + "  - fc: {outputs: 20}\n  - conv: {filters: 4, kernel: 3}\n",
               6, "conv", "needs an input of [N, C, H, W], got [1, 20]");
  expect_error(std::string(kHeader) + "  - conv: {filters: 4, kernel: 29}\n", 5, "conv",
               "kernel larger than the padded input");
  expect_error(std::string(kHeader) + "  - conv: {filters: 4, kernel: 3, groups: 3}\n", 5, "conv",
               "groups (3) must divide the input channels (1)");
  expect_error(std::string(kHeader) +
                   "  - conv: {name: a, filters: 4, kernel: 3}\n"
                   "  - add: {input: [a, data]}\n",
               6, "add", "operands must have the same shape");
  expect_error(std::string(kHeader) + "  - fc: {outputs: 5}\n", 5, "fc",
               "the last layer must give [N, classes] = [1, 10], it gives [1, 5]");
  expect_error(std::string(kHeader) + "  - fc: {outputs: 10}\n  - softmax\n", 6, "softmax",
               "the loss applies softmax itself");
}

TEST(NetworkFileErrors, NetworkAndTrainingKeys) {
  expect_error("name: t\ninput: [1, 28, 28]\nclases: 10\n", 3, "clases", "did you mean 'classes'");
  expect_error(std::string("train:\n  learning_rate: 0.1\n") + kHeader + "  - relu\n", 2,
               "train.learning_rate", "unknown training setting");
  expect_error(std::string("train:\n  lr: 0.1\n  solver: sgdd\n") + kHeader + "  - relu\n", 3,
               "train.solver", "'sgdd' is not one of: adagrad, adam, adamw, nesterov");
  expect_error(std::string("train: {lr: -1}\n") + kHeader + "  - relu\n", 1, "train.lr",
               "lr must be in");
  expect_error("description: \"bad \\x1d byte\"\n" + std::string(kHeader) + "  - relu\n", 1,
               "description", "printable UTF-8");
  expect_error("description: bad \xff byte\n" + std::string(kHeader) + "  - relu\n", 1,
               "description", "printable UTF-8");
  expect_error(std::string("train: {mean: [1, 2]}\n") + kHeader + "  - relu\n", 1, "train.mean",
               "mean has 2 values; the input has 1 channels");
}

TEST(NetworkFileErrors, DefaultsAreCheckedWhereTheyAreWritten) {
  expect_error(std::string("defaults:\n  conv: {kernel: 3, padd: 1}\n") + kHeader, 2, "padd",
               "did you mean 'pad'");
  expect_error(
      std::string("defaults:\n  conv: {kernel: 0}\n") + kHeader + "  - conv: {filters: 2}\n", 2,
      "kernel", "an integer or [h, w] in 1..");
  expect_error(std::string("defaults:\n  cnv: {kernel: 3}\n") + kHeader, 2, "cnv",
               "unknown layer type");
}

TEST(NetworkFileErrors, NotANetworkFile) {
  expect_error("", 1, "", "empty file");
  expect_error("# just a comment\n", 1, "", "empty file");
  expect_error("hello world", 1, "", "not a network file");
  expect_error("- a\n- b\n", 1, "", "not a network file");
  expect_error(
      "\x7f"
      "ELF\x01\x02\x03\x04\x05\x06",
      1, "", "not a network file");
  expect_error("name: a\n---\nname: b\n", 2, "", "several YAML documents");
  // yaml-cpp 0.7's LoadAll never returns on these (jbeder/yaml-cpp#1040).
  expect_error(",", 1, "", "not a network file");
  expect_error(" , a\n", 1, "", "not a network file");
}

TEST(NetworkFileErrors, YamlSyntaxErrorsGiveTheirLine) {
  // yaml-cpp notices the unclosed map where the next entry starts.
  expect_error(std::string(kHeader) + "  - conv: {filters: 3, kernel: 5\n  - relu\n", 7, "",
               "YAML syntax error");
  expect_error("name: t\ninput: [1, 28, 28\n", 3, "", "YAML syntax error");
  expect_error("name: t\n  bad indent: 1\n", 2, "", "YAML syntax error");
}

TEST(NetworkFileErrors, MisindentedSettingsGetAHint) {
  expect_error(std::string(kHeader) + "  - conv:\n    filters: 3\n", 5, "conv",
               "indent the settings under 'conv:'");
}

// --- The C++ builder ---

TEST(NetBuilder, LeNetInCppIsTheLeNetOfTheFile) {
  NetBuilder b("lenet", {1, 28, 28}, 10);
  b.description("Caffe's LeNet for 28x28 gray images (MNIST, Fashion-MNIST)");
  Recipe& r = b.recipe();
  r.lr = 0.05, r.momentum = 0.9, r.weight_decay = 0.0005, r.lr_policy = "cosine";
  r.warmup_iters = 200, r.batch = 64, r.epochs = 4, r.scale = 1.0 / 255;
  b.conv("conv1", 20, 5, {.bias_lr_mult = 2})
      .max_pool("pool1", 2)
      .conv("conv2", 50, 5, {.bias_lr_mult = 2})
      .max_pool("pool2", 2)
      .fc("ip1", 500, {.bias_lr_mult = 2})
      .relu("relu1")
      .fc("ip2", 10, {.bias_lr_mult = 2});
  NetworkSpec cpp = b.spec();
  NetworkSpec file = load_network(MYELIN_SOURCE_DIR "/models/lenet.yaml");
  EXPECT_TRUE(equivalent(cpp, file)) << write_network(cpp) << "\nvs\n" << write_network(file);

  Graph a = b.build(64, true).graph;
  Graph f = build_network(file, 64, true).graph;
  ASSERT_EQ(a.nodes().size(), f.nodes().size());
  for (size_t i = 0; i < a.nodes().size(); ++i) {
    const Node &x = a.nodes()[i], &y = f.nodes()[i];
    EXPECT_EQ(x.op, y.op);
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.attrs.items(), y.attrs.items()) << x.name;
    EXPECT_EQ(x.inputs, y.inputs) << x.name;
    EXPECT_EQ(x.outputs, y.outputs) << x.name;
  }
  ASSERT_EQ(a.values().size(), f.values().size());
  for (size_t i = 0; i < a.values().size(); ++i) {
    const Value &x = a.values()[i], &y = f.values()[i];
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.shape, y.shape) << x.name;
    EXPECT_EQ(x.kind, y.kind) << x.name;
    EXPECT_EQ(x.init.kind, y.init.kind) << x.name;
    EXPECT_EQ(x.init.value, y.init.value) << x.name;
    EXPECT_EQ(x.lr_mult, y.lr_mult) << x.name;
    EXPECT_EQ(x.decay_mult, y.decay_mult) << x.name;
  }
  EXPECT_EQ(a.kept(), f.kept());
}

TEST(NetBuilder, ResidualNetworkWithNamedInputsMatchesTheFile) {
  NetBuilder b("resnet", {1, 28, 28}, 10);
  b.description(load_network("resnet").description);
  b.recipe(load_network("resnet").recipe);
  ConvOptions c{.pad = 1, .bias = false, .init = {"msra"}};
  auto conv3 = [&](const std::string& name, int64_t filters, int64_t stride = 1) {
    ConvOptions o = c;
    o.stride = stride;
    b.conv(name, filters, 3, o);
  };
  conv3("conv1", 24);
  b.batch_norm("bn1").relu("relu1").max_pool("pool1", 2);
  conv3("res1_conv1", 24);
  b.batch_norm("res1_bn1").relu("res1_relu1");
  conv3("res1_conv2", 24);
  b.batch_norm("res1_bn2").add("res1", {"res1_bn2", "pool1"}).relu("res1_relu");
  conv3("res2_conv1", 48, 2);
  b.batch_norm("res2_bn1").relu("res2_relu1");
  conv3("res2_conv2", 48);
  b.batch_norm("res2_bn2");
  b.from({"res1_relu"}).conv("res2_proj", 48, 1, {.stride = 2, .bias = false, .init = {"msra"}});
  b.batch_norm("res2_proj_bn").add("res2", {"res2_bn2", "res2_proj_bn"}).relu("res2_relu");
  b.fc("fc", 10);
  NetworkSpec cpp = b.spec();
  EXPECT_TRUE(equivalent(cpp, load_network("resnet"))) << write_network(cpp);
}

TEST(NetBuilder, ErrorsNameTheLayerAndKey) {
  NetBuilder b("mine", {1, 8, 8}, 4);
  try {
    b.relu("r").conv("c", 0, 3);
    FAIL() << "expected a ParseError";
  } catch (const ParseError& e) {
    EXPECT_EQ(e.file(), "mine (C++ builder)");
    EXPECT_EQ(e.line(), 2);  // the layer's position
    EXPECT_EQ(e.field(), "filters");
  }
  NetBuilder shapes("mine", {1, 8, 8}, 4);
  shapes.conv("c", 4, 9);
  EXPECT_THROW(shapes.spec(), ParseError);
  NetBuilder dag("mine", {1, 8, 8}, 4);
  dag.fc("a", 4).add("s", {"a", "missing"});
  try {
    dag.spec();
    FAIL() << "expected a ParseError";
  } catch (const ParseError& e) {
    EXPECT_EQ(e.field(), "input");
    EXPECT_EQ(e.line(), 2);
  }
}

TEST(NetBuilder, WrittenNetworksReadBack) {
  NetBuilder b("written", {3, 8, 8}, 4);
  b.conv("c", 6, {3, 1}, {.stride = {2, 1}, .pad = {1, 0}, .init = {"gaussian", 0.03}})
      .avg_pool("p", 2, {.count_include_pad = false})
      .leaky_relu("lr", 0.2)
      .flatten("f")
      .dropout("d", 0.3)
      .fc("out", 4, {.bias_init = {"constant", 0.25}});
  b.recipe().mean = {1.5, 2.5, 3.5};
  b.recipe().test_mirror = true;
  NetworkSpec s = b.spec();
  std::string text = write_network(s);
  EXPECT_TRUE(equivalent(s, parse_network(text, "w.yaml"))) << text;
  EXPECT_TRUE(parse_network(text, "w.yaml").recipe.test_mirror) << text;
  EXPECT_NE(text.find("gaussian(0.03)"), std::string::npos) << text;
  EXPECT_NE(text.find("count_include_pad: false"), std::string::npos) << text;
}

TEST(NetworkFile, StandardFilesAreCommented) {
  for (const std::string& n : standard_networks()) {
    std::string text = slurp(MYELIN_SOURCE_DIR "/models/" + n + ".yaml");
    EXPECT_EQ(text.rfind("# ", 0), 0u) << n << " should start with a comment on its origin";
    EXPECT_EQ(text.find("TODO"), std::string::npos) << n;
  }
}
