#include "cpu/dnnl_util.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "cpu/blocked.h"

namespace myelin::cpu {

namespace {

constexpr size_t kScratchAlign = 64;  // a cache line; oneDNN's own alignment

memory::format_tag plain_tag(size_t rank) {
  using tag = memory::format_tag;
  static const tag tags[] = {tag::a, tag::ab, tag::abc, tag::abcd, tag::abcde, tag::abcdef};
  if (rank == 0 || rank > 6)
    throw UnsupportedError("oneDNN tensors have 1 to 6 dimensions, got " + std::to_string(rank));
  return tags[rank - 1];
}

}  // namespace

memory::dims dnnl_dims(const Shape& s) {
  if (s.rank() == 0) return {1};
  return memory::dims(s.dims.begin(), s.dims.end());
}

memory::desc plain_desc(const memory::dims& d) {
  return memory::desc(d, memory::data_type::f32, plain_tag(d.size()));
}

memory::desc stored_desc(const Shape& s, Layout layout) {
  if (layout == Layout::nhwc) throw UnsupportedError("the CPU engine stores no NHWC values");
  if (layout == Layout::nchw) return plain_desc(s);
  const auto tag =
      layout == Layout::nchw8c ? memory::format_tag::nChw8c : memory::format_tag::nChw16c;
  return memory::desc(dnnl_dims(s), memory::data_type::f32, tag);
}

memory::desc any_desc(const memory::dims& d) {
  return memory::desc(d, memory::data_type::f32, memory::format_tag::any);
}

void throw_dnnl_error(const dnnl::error& e, const std::string& op, const std::string& layer,
                      const std::string& primitive) {
  throw DeviceError("oneDNN " + primitive + " for " + op + " '" + layer + "' failed: " + e.what() +
                    " (status " + std::to_string(static_cast<int>(e.status)) + ")");
}

dnnl::primitive_attr user_scratchpad_attr() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

bool verbose() {
  static const bool on = std::getenv("MYELIN_CPU_VERBOSE") != nullptr;
  return on;
}

std::string layout_override() {
  const char* v = std::getenv("MYELIN_CPU_LAYOUT");
  std::string s = v ? v : "";
  if (s.empty() || s == "auto") return "";
  if (s != "gemm" && s != "plain" && s != "blocked")
    throw UnsupportedError("MYELIN_CPU_LAYOUT='" + s + "': expected auto, gemm, plain or blocked");
  return s;
}

DnnlSequence::Slot DnnlSequence::add_slot(Source s, int index, const memory::desc& md) {
  SlotInfo info{s, index, 0, memory()};
  if (s == Source::workspace) {
    info.offset = workspace_bytes_;
    workspace_bytes_ += (md.get_size() + kScratchAlign - 1) / kScratchAlign * kScratchAlign;
  }
  try {
    info.mem = memory(md, backend_->engine(), DNNL_MEMORY_NONE);
  } catch (const dnnl::error& e) {
    throw_dnnl_error(e, op_, layer_, "memory");
  }
  slots_.push_back(std::move(info));
  return static_cast<Slot>(slots_.size() - 1);
}

DnnlSequence::Slot DnnlSequence::scratch(const memory::desc& md) {
  return add_slot(Source::workspace, -1, md);
}

DnnlSequence::Step DnnlSequence::make_step(const dnnl::primitive& p,
                                           const std::vector<std::pair<int, Slot>>& args,
                                           const std::string& what) {
  Step step{p, {}, what};
  for (auto [arg, slot] : args) step.args.emplace(arg, slots_.at(slot).mem);
  return step;
}

DnnlSequence::Slot DnnlSequence::input_as(int index, const memory::desc& stored,
                                          const memory::desc& want) {
  return slot_as(input(index, stored), stored, want);
}

DnnlSequence::Slot DnnlSequence::slot_as(Slot user, const memory::desc& stored,
                                         const memory::desc& want) {
  if (want == stored) return user;
  Slot staged = scratch(want);
  convert(user, stored, staged, want);
  return staged;
}

void DnnlSequence::convert(Slot from, const memory::desc& from_md, Slot to,
                           const memory::desc& to_md) {
  steps_.push_back(conversion(from, from_md, to, to_md));
  ++reorders_;
}

DnnlSequence::Slot DnnlSequence::output_as(int index, const memory::desc& stored,
                                           const memory::desc& have) {
  Slot user = output(index, stored);
  if (have == stored) return user;
  Slot staged = scratch(have);
  post_.push_back(conversion(staged, have, user, stored));
  ++reorders_;
  return staged;
}

namespace {

// The channel block of md where it is a 4-D f32 nChw8c or nChw16c, else 0.
int64_t block_of_desc(const memory::desc& md) {
  const memory::dims d = md.dims();
  if (d.size() != 4) return 0;
  const Shape s{d[0], d[1], d[2], d[3]};
  if (md == stored_desc(s, Layout::nchw8c)) return 8;
  if (md == stored_desc(s, Layout::nchw16c)) return 16;
  return 0;
}

}  // namespace

DnnlSequence::Step DnnlSequence::conversion(Slot from, const memory::desc& from_md, Slot to,
                                            const memory::desc& to_md) {
  const int64_t a = block_of_desc(from_md), b = block_of_desc(to_md);
  if (a && b && a != b && from_md.dims() == to_md.dims()) {
    Step st{dnnl::primitive(), {}, "reorder", from, to, a, b};
    return st;
  }
  dnnl::reorder r;
  try {
    r = dnnl::reorder(
        dnnl::reorder::primitive_desc(backend_->engine(), from_md, backend_->engine(), to_md));
  } catch (const dnnl::error& e) {
    throw_dnnl_error(e, op_, layer_, "reorder");
  }
  return make_step(r, {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}}, "reorder");
}

void DnnlSequence::execute(const Step& st, dnnl::stream& stream) const {
  if (!st.from_block) return st.prim.execute(stream, st.args);
  const memory &from = slots_[st.from].mem, &to = slots_[st.to].mem;
  const memory::dims d = from.get_desc().dims();
  reblock(static_cast<const float*>(from.get_data_handle()), st.from_block,
          static_cast<float*>(to.get_data_handle()), st.to_block, d[0], d[1], d[2] * d[3]);
}

void DnnlSequence::add(const dnnl::primitive& p, const std::vector<std::pair<int, Slot>>& args,
                       const memory::desc& scratchpad, const std::string& what) {
  std::vector<std::pair<int, Slot>> all = args;
  if (scratchpad.get_size() > 0) all.emplace_back(DNNL_ARG_SCRATCHPAD, scratch(scratchpad));
  steps_.push_back(make_step(p, all, what));
  if (verbose())
    std::fprintf(stderr, "myelin cpu: %s '%s': %s\n", op_.c_str(), layer_.c_str(),
                 describe().c_str());
}

void DnnlSequence::run(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
                       void* workspace) {
  auto* ws = static_cast<std::byte*>(workspace);
  for (SlotInfo& s : slots_) {
    void* p = s.source == Source::input    ? in[s.index].data()
              : s.source == Source::output ? out[s.index].data()
                                           : ws + s.offset;
    s.mem.set_data_handle(p);
  }
  dnnl::stream& stream = backend_->stream();
  const Step* current = nullptr;
  try {
    for (const Step& st : steps_) current = &st, execute(st, stream);
    for (const Step& st : post_) current = &st, execute(st, stream);
    stream.wait();
  } catch (const dnnl::error& e) {
    throw_dnnl_error(e, op_, layer_, current ? current->what : "stream");
  }
}

std::string DnnlSequence::describe() const {
  std::string s;
  auto name = [](const Step& st) -> std::string {
    if (st.what == "reorder") return "reorder";
    const char* impl = nullptr;
    dnnl_primitive_desc_query(st.prim.get_primitive_desc(), dnnl_query_impl_info_str, 0, &impl);
    return st.what + "(" + (impl ? impl : "?") + ")";
  };
  for (const Step& st : steps_) s += (s.empty() ? "" : ", ") + name(st);
  for (const Step& st : post_) s += ", " + name(st);
  return s;
}

}  // namespace myelin::cpu
