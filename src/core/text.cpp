#include "core/text.h"

#include <algorithm>
#include <vector>

namespace myelin {

std::string either_of(const std::vector<std::string>& options) {
  std::string list;
  for (size_t i = 0; i < options.size(); ++i)
    list += (i == 0 ? "" : i + 1 == options.size() ? " or " : ", ") + options[i];
  return list;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] != b[j - 1])});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string closest_match(const std::string& word, const std::vector<std::string>& options) {
  std::string best;
  size_t best_d = 3;
  for (const std::string& o : options)
    if (size_t d = edit_distance(word, o); d < best_d) best = o, best_d = d;
  return best;
}

}  // namespace myelin
