// The embedding lookup and its gradient on the CPU: row copies, and row sums into a zeroed table
// gradient (one thread: ids repeat, and the tables of text networks are small).
#include <algorithm>
#include <cstring>

#include "core/backend.h"
#include "core/error.h"

namespace myelin {

namespace {

// The id at `i`, checked against the table's rows.
int64_t checked_id(const Tensor& ids, int64_t i, int64_t rows, const Node& node) {
  int64_t id = ids.data_as<int32_t>()[i];
  if (id < 0 || id >= rows)
    throw Error(node.op + " '" + node.name + "': id " + std::to_string(id) + " at position " +
                std::to_string(i) + " is outside the table's " + std::to_string(rows) +
                " rows (does the data's vocabulary match the network's?)");
  return id;
}

void embedding(const std::vector<Tensor>& in, const std::vector<Tensor>& out, const StepContext&,
               const Node& node) {
  const Tensor &ids = in[0], &table = in[1];
  const int64_t rows = table.shape()[0], width = table.shape()[1];
  const float* t = table.f32();
  float* y = out[0].f32();
  for (int64_t i = 0; i < ids.numel(); ++i)
    std::memcpy(y + i * width, t + checked_id(ids, i, rows, node) * width, width * sizeof(float));
}

void embedding_grad(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
                    const StepContext&, const Node& node) {
  const Tensor &dy = in[0], &ids = in[1];
  const int64_t rows = out[0].shape()[0], width = out[0].shape()[1];
  float* dt = out[0].f32();
  std::fill_n(dt, rows * width, 0.0f);
  const float* g = dy.f32();
  for (int64_t i = 0; i < ids.numel(); ++i) {
    float* row = dt + checked_id(ids, i, rows, node) * width;
    for (int64_t j = 0; j < width; ++j) row[j] += g[i * width + j];
  }
}

}  // namespace

MYELIN_REGISTER_OPS {
  register_kernel_fn("embedding", DeviceKind::cpu, embedding);
  register_kernel_fn("embedding_grad", DeviceKind::cpu, embedding_grad);
}

}  // namespace myelin
