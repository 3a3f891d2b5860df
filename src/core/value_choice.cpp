#include "core/value_choice.h"

#include "core/op_registry.h"

namespace myelin {

namespace {

// A view's output shares its source's memory: both are decided at the source (the root).
std::vector<ValueId> view_roots(const Graph& g) {
  std::vector<ValueId> root(g.values().size());
  for (size_t v = 0; v < root.size(); ++v) root[v] = static_cast<ValueId>(v);
  for (const Node& n : g.nodes())
    if (op_def(n.op).is_view) root[n.outputs[0]] = root[n.inputs[0]];
  return root;
}

template <class F>
void each_operand(const Node& n, F&& f) {
  for (size_t k = 0; k < n.inputs.size(); ++k) f(n.inputs[k], false, k);
  for (size_t k = 0; k < n.outputs.size(); ++k) f(n.outputs[k], true, k);
}

}  // namespace

std::vector<char> choose_values(const Graph& g, const ChoiceRules& rules) {
  const size_t count = g.values().size();
  std::vector<ValueId> root = view_roots(g);
  std::vector<char> ok(count, 1), read(count, 0);
  for (const Node& n : g.nodes()) {
    const bool view = op_def(n.op).is_view;
    for (size_t k = 0; k < n.inputs.size(); ++k)
      if (!view) read[root[n.inputs[k]]] = 1;  // a view's readers are its output's readers
    each_operand(n, [&](ValueId v, bool output, size_t k) {
      if (!rules.takes(n, output, k)) ok[root[v]] = 0;
    });
  }
  for (ValueId v : g.kept()) ok[root[v]] = 0;
  for (size_t v = 0; v < count; ++v) {
    const bool unread = root[v] == static_cast<ValueId>(v) && !read[v];
    if (unread || !rules.eligible(g.value(static_cast<ValueId>(v)))) ok[root[v]] = 0;
  }
  // A tied node whose taking operands disagree gives all of them up (giving a value up never
  // breaks another node's rule, so this settles).
  for (bool changed = true; changed;) {
    changed = false;
    for (const Node& n : g.nodes()) {
      if (!rules.tied(n)) continue;
      bool any_on = false, any_off = false;
      each_operand(n, [&](ValueId v, bool output, size_t k) {
        if (rules.takes(n, output, k)) (ok[root[v]] ? any_on : any_off) = true;
      });
      if (!(any_on && any_off)) continue;
      each_operand(n, [&](ValueId v, bool, size_t) { ok[root[v]] = 0; });
      changed = true;
    }
  }
  std::vector<char> chosen(count);
  for (size_t v = 0; v < count; ++v) chosen[v] = ok[root[v]];
  return chosen;
}

bool OperandSlots::has(bool output, size_t k) const {
  for (int i : output ? out : in)
    if (static_cast<size_t>(i) == k) return true;
  return false;
}

ChoiceRules table_rules(std::function<const OperandSlots*(const Node&)> slots,
                        std::function<bool(const Value&)> eligible) {
  return ChoiceRules{[slots](const Node& n, bool output, size_t k) {
                       const OperandSlots* s = slots(n);
                       return s && s->has(output, k);
                     },
                     [slots](const Node& n) {
                       const OperandSlots* s = slots(n);
                       return s && s->tied;
                     },
                     std::move(eligible)};
}

}  // namespace myelin
