// Embedding: rows of a table picked by integer ids, the first layer of a text network.
//   embedding(ids[...] i32, table[V, E]) -> [..., E]
//   embedding_grad(dy[..., E], ids) -> dtable[V, E]: each id's rows of dy summed into its row,
//   zero where no id points (sparse in effect: only the rows of this batch's ids change).
#include "ops/common.h"

namespace myelin {

namespace {

std::vector<TensorType> infer_embedding(const Node& n, const std::vector<TensorType>& in) {
  expect(in[0].dtype == DType::i32, n, in, "ids must be i32");
  expect(in[1].shape.rank() == 2, n, in, "the table must be [vocabulary, features]");
  Dims out = in[0].shape.dims;
  out.push_back(in[1].shape[1]);
  return {{Shape(out), in[1].dtype}};
}

std::vector<TensorType> infer_embedding_grad(const Node& n, const std::vector<TensorType>& in) {
  Shape table(n.attrs.ints("table_shape", {}));
  expect(table.rank() == 2, n, in, "attrs.table_shape must be [vocabulary, features]");
  Dims dy = in[1].shape.dims;
  dy.push_back(table[1]);
  expect(in[0].shape == Shape(dy), n, in, "dy must be the ids' shape plus the features");
  return {{table, in[0].dtype}};
}

std::vector<ValueId> grad_embedding(GradBuilder& g) {
  Shape table = g.shape(g.in(1));  // a copy: adding nodes may move the values
  if (!g.needs_grad(1)) return {kNoValue, kNoValue};
  return {kNoValue,
          g.add1("embedding_grad", {g.grad_out(0), g.in(0)}, Attrs{{"table_shape", table.dims}})};
}

}  // namespace

MYELIN_REGISTER_OPS {
  register_op({.name = "embedding",
               .min_inputs = 2,
               .max_inputs = 2,
               .infer = infer_embedding,
               .grad = grad_embedding,
               .flops = no_flops,  // a gather
               .doc = "ids[...] i32, table[V,E] -> [..., E]: the table's rows at the ids"});
  register_op({.name = "embedding_grad",
               .min_inputs = 2,
               .max_inputs = 2,
               .infer = infer_embedding_grad,
               .flops = flops_per_input(1.0),  // one add per element of dy
               .doc = "(dy, ids) -> dtable: dy's rows summed into their ids' rows"});
}

}  // namespace myelin
