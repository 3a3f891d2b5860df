// Myelin's lstm, gru and rnn layers as ONNX LSTM, GRU and RNN nodes, one per stacked layer.
// Myelin keeps PyTorch's weights (NAME.weight_ih_l0 [gates*H, F], gates i,f,g,o for the LSTM and
// r,z,n for the GRU, two biases); ONNX wants W [dirs, gates*H, F] and R with gates i,o,f,c (LSTM)
// or z,r,h (GRU) and one bias [dirs, 2*gates*H] = [Wb, Rb]. PyTorch's GRU applies the reset gate
// after the recurrent product: ONNX's linear_before_reset = 1.
#include <cstring>

#include "onnx/export_graph.h"

namespace myelin::onnx_export {

namespace {

struct Cell {
  std::string op;                 // LSTM, GRU or RNN
  std::vector<int> pytorch_gate;  // for each ONNX gate in order, PyTorch's gate index
};

Cell cell_of(const std::string& type) {
  if (type == "lstm") return {"LSTM", {0, 3, 1, 2}};  // i,o,f,c <- i,f,g,o
  if (type == "gru") return {"GRU", {1, 0, 2}};       // z,r,h <- r,z,n
  return {"RNN", {0}};
}

// Copies `src` ([gates*H, cols] or [gates*H]) into `dst` with its gate blocks reordered.
float* copy_gates(const Tensor& src, const std::vector<int>& order, float* dst) {
  const int64_t block = src.numel() / static_cast<int64_t>(order.size());
  for (int g : order) {
    std::memcpy(dst, src.f32() + g * block, sizeof(float) * static_cast<size_t>(block));
    dst += block;
  }
  return dst;
}

struct LayerWeights {
  std::string w, r, b;
};

// W, R and B of stacked layer k, both directions stacked on the first axis.
LayerWeights convert(GraphWriter& gw, const LayerSpec& l, const Cell& cell, int64_t k, int dirs) {
  std::vector<const Tensor*> ih, hh, bih, bhh;
  for (int d = 0; d < dirs; ++d) {
    std::string suffix = "_l" + std::to_string(k) + (d ? "_reverse" : "");
    ih.push_back(&gw.weight_tensor(l.name + ".weight_ih" + suffix));
    hh.push_back(&gw.weight_tensor(l.name + ".weight_hh" + suffix));
    bih.push_back(&gw.weight_tensor(l.name + ".bias_ih" + suffix));
    bhh.push_back(&gw.weight_tensor(l.name + ".bias_hh" + suffix));
  }
  auto stacked = [&](const std::vector<const Tensor*>& parts) {
    Dims dims{dirs};
    for (int64_t x : parts[0]->shape().dims) dims.push_back(x);
    Tensor t = Tensor::empty(Shape(dims), DType::f32);
    float* dst = t.f32();
    for (const Tensor* p : parts) dst = copy_gates(*p, cell.pytorch_gate, dst);
    return t;
  };
  const int64_t bias = bih[0]->numel();
  Tensor b = Tensor::empty(Shape{dirs, 2 * bias}, DType::f32);
  float* dst = b.f32();
  for (int d = 0; d < dirs; ++d) {
    dst = copy_gates(*bih[d], cell.pytorch_gate, dst);
    dst = copy_gates(*bhh[d], cell.pytorch_gate, dst);
  }
  const std::string base = l.name + "." + cell.op + "_l" + std::to_string(k);
  return {gw.initializer(base + ".W", stacked(ih)), gw.initializer(base + ".R", stacked(hh)),
          gw.initializer(base + ".B", b)};
}

std::vector<onnx::AttributeProto> cell_attrs(const LayerSpec& l, int dirs) {
  const int64_t hidden = l.attrs.i("hidden", 1);
  std::vector<onnx::AttributeProto> a = {
      attr("hidden_size", hidden),
      attr("direction", std::string(dirs == 2 ? "bidirectional" : "forward"))};
  if (l.type == "gru") a.push_back(attr("linear_before_reset", int64_t{1}));
  if (l.type == "rnn") {
    std::string f = l.attrs.s("nonlinearity", "tanh") == "relu" ? "Relu" : "Tanh";
    a.push_back(attr("activations", std::vector<std::string>(static_cast<size_t>(dirs), f)));
  }
  return a;
}

std::string transpose(GraphWriter& w, const std::string& layer, const std::string& x,
                      std::vector<int64_t> perm, const std::string& out = "") {
  return w.node1("Transpose", layer, {x}, {attr("perm", std::move(perm))}, out);
}

// [A, B, dirs, H] -> [A, B, dirs*H]: the directions side by side, as Myelin concatenates them.
std::string join_directions(GraphWriter& w, const std::string& layer, const std::string& x,
                            std::vector<int64_t> shape, const std::string& out = "") {
  return w.node1("Reshape", layer, {x, w.int64s(layer + ".shape", shape)}, {}, out);
}

}  // namespace

// Time-major inside ([T, N, F], ONNX's default layout, which every runtime implements), batch
// first outside. Dropout between stacked layers is the identity at inference. The initial states
// are zero: a layer with carry_state starts each call afresh.
std::string emit_recurrent(GraphWriter& w, const LayerSpec& l, const std::string& x,
                           const std::string& out) {
  const Cell cell = cell_of(l.type);
  const int dirs = l.attrs.i("bidirectional", 0) ? 2 : 1;
  const int64_t layers = l.attrs.i("layers", 1);
  const bool sequence = l.attrs.s("output", "sequence") == "sequence";
  std::string seq = transpose(w, l.name, x, {1, 0, 2});
  std::string last;
  for (int64_t k = 0; k < layers; ++k) {
    LayerWeights p = convert(w, l, cell, k, dirs);
    const bool need_seq = sequence || k + 1 < layers;
    std::vector<std::string> outs = {need_seq ? w.fresh(l.name + "/" + cell.op + "_Y") : "",
                                     w.fresh(l.name + "/" + cell.op + "_Y_h")};
    outs = w.node(cell.op, l.name, {seq, p.w, p.r, p.b}, cell_attrs(l, dirs), outs);
    last = outs[1];
    if (need_seq)  // Y [T, dirs, N, H] -> [T, N, dirs*H]
      seq = join_directions(w, l.name, transpose(w, l.name, outs[0], {0, 2, 1, 3}), {0, 0, -1});
  }
  if (sequence) return transpose(w, l.name, seq, {1, 0, 2}, out);
  // Y_h [dirs, N, H] -> [N, dirs*H]
  return join_directions(w, l.name, transpose(w, l.name, last, {1, 0, 2}), {0, -1}, out);
}

}  // namespace myelin::onnx_export
