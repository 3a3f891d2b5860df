// Shared plumbing for the CPU kernels built on oneDNN 2.6 (v2 API): memory descriptors from
// Shapes, oneDNN errors as DeviceErrors naming the primitive and layer, and DnnlSequence, the
// primitives of one kernel prepared once and run every step on the kernel's tensors.
#pragma once
#include <dnnl.hpp>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/backend.h"
#include "core/error.h"
#include "cpu/cpu_backend.h"

namespace myelin::cpu {

using dnnl::memory;

memory::dims dnnl_dims(const Shape& s);
// f32, row-major (the layout of every tensor between ops).
memory::desc plain_desc(const memory::dims& d);
inline memory::desc plain_desc(const Shape& s) {
  return plain_desc(dnnl_dims(s));
}
// f32 as a value is stored (Value::layout): row-major, nChw16c or nChw8c (blocked.h).
memory::desc stored_desc(const Shape& s, Layout layout);
// f32 with format_tag::any: the primitive chooses (often a blocked layout such as nChw16c).
memory::desc any_desc(const memory::dims& d);

[[noreturn]] void throw_dnnl_error(const dnnl::error& e, const std::string& op,
                                   const std::string& layer, const std::string& primitive);

// Runs f(); a dnnl::error becomes a DeviceError naming the primitive and the node's layer.
template <class F>
auto dnnl_call(const Node& n, const std::string& primitive, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const dnnl::error& e) {
    throw_dnnl_error(e, n.op, n.name, primitive);
  }
}

// A primitive attribute with a user-managed scratchpad, so oneDNN's scratch lives in the step
// workspace instead of being allocated by the library.
dnnl::primitive_attr user_scratchpad_attr();

// The primitives of one kernel over its inputs, outputs and workspace. Memory objects are made
// once with no handle; run() points them at this step's tensors and executes in order. Layout
// conversions (between the stored layout and the primitive's) are reorders into buffers carved from
// the step workspace.
class DnnlSequence {
 public:
  using Slot = int;

  DnnlSequence(CpuBackend& backend, const Node& node)
      : backend_(&backend), op_(node.op), layer_(node.name) {}

  // Kernel input/output `index`, stored as `md`.
  Slot input(int index, const memory::desc& md) { return add_slot(Source::input, index, md); }
  Slot output(int index, const memory::desc& md) { return add_slot(Source::output, index, md); }
  Slot scratch(const memory::desc& md);  // a buffer in the workspace

  // Input `index` (stored as `stored`) as the primitive wants it: the input itself when the
  // layouts agree, else a workspace buffer filled by a reorder that runs before the primitive.
  Slot input_as(int index, const memory::desc& stored, const memory::desc& want);
  // Slot `user` (stored as `stored`) likewise, converted after the steps added so far.
  Slot slot_as(Slot user, const memory::desc& stored, const memory::desc& want);
  // A conversion from slot `from` into slot `to` (reblock or a reorder), run in order with the
  // primitives: a kernel writing one of its inputs converted as an output.
  void convert(Slot from, const memory::desc& from_md, Slot to, const memory::desc& to_md);
  // Output `index` (stored as `stored`) as the primitive produces it (`have`): the output
  // itself, or a workspace buffer reordered into the output after the primitives.
  Slot output_as(int index, const memory::desc& stored, const memory::desc& have);

  // Appends a primitive; `scratchpad` is its pd's scratchpad_desc() (may be empty).
  void add(const dnnl::primitive& p, const std::vector<std::pair<int, Slot>>& args,
           const memory::desc& scratchpad, const std::string& what);

  size_t workspace_bytes() const { return workspace_bytes_; }
  void run(const std::vector<Tensor>& in, const std::vector<Tensor>& out, void* workspace);
  int reorder_count() const { return reorders_; }
  std::string describe() const;  // "reorder, jit:avx512_core, reorder"

 private:
  enum class Source { input, output, workspace };
  struct SlotInfo {
    Source source;
    int index;      // kernel input/output index
    size_t offset;  // in the workspace
    memory mem;
  };
  struct Step {
    dnnl::primitive prim;
    std::unordered_map<int, memory> args;
    std::string what;
    // A conversion between nChw8c and nChw16c by our own loop (reblock, blocked.h) instead of
    // a primitive: the slots it reads and writes, and their blocks; from_block 0 where none.
    Slot from = -1, to = -1;
    int64_t from_block = 0, to_block = 0;
  };

  Slot add_slot(Source s, int index, const memory::desc& md);
  // The conversion from `from` to `to`: reblock where it is one between 8- and 16-channel blocks,
  // else a oneDNN reorder.
  Step conversion(Slot from, const memory::desc& from_md, Slot to, const memory::desc& to_md);
  void execute(const Step& st, dnnl::stream& stream) const;
  Step make_step(const dnnl::primitive& p, const std::vector<std::pair<int, Slot>>& args,
                 const std::string& what);

  CpuBackend* backend_;
  std::string op_, layer_;  // for error messages
  std::vector<SlotInfo> slots_;
  std::vector<Step> steps_;  // input reorders and primitives, in order
  std::vector<Step> post_;   // output reorders, after every step
  size_t workspace_bytes_ = 0;
  int reorders_ = 0;
};

// MYELIN_CPU_VERBOSE set: kernels print the implementations they chose to stderr.
bool verbose();

// The convolution implementation pinned by MYELIN_CPU_LAYOUT (gemm, plain or blocked; see
// conv.cpp), or "" when unset or "auto". Any other value throws UnsupportedError.
std::string layout_override();

}  // namespace myelin::cpu
