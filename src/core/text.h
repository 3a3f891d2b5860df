// Text helpers for error messages.
#pragma once
#include <string>

namespace myelin {

// Levenshtein distance, for "did you mean" hints on misspelt flags, keys and types.
size_t edit_distance(const std::string& a, const std::string& b);

}  // namespace myelin
