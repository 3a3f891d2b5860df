// CpuBackend::fuse: a ReLU whose input comes from a convolution, an inner product or a batch
// norm becomes that node's epilogue, and the gradient of a ReLU before a 2x2 max pooling part of
// the pooling's gradient (ops/fuse.h). MYELIN_CPU_FUSE=0 turns it off.
#include <cstdlib>
#include <cstring>

#include "cpu/cpu_backend.h"
#include "cpu/fuse.h"
#include "ops/fuse.h"

namespace myelin {

void CpuBackend::fuse(Graph& g) const {
  const char* env = std::getenv("MYELIN_CPU_FUSE");
  if (env && std::strcmp(env, "0") == 0) return;
  fuse_relus(g, [](const Node& producer, double) {
    return producer.op == "conv2d" || producer.op == "inner_product" || producer.op == "batch_norm";
  });
  fuse_relu_grads(g, [&g](const Node& n) { return cpu::pool_grad_takes_relu_grad(n, g); });
}

}  // namespace myelin
