// Text helpers for error messages.
#pragma once
#include <string>
#include <vector>

namespace myelin {

// Levenshtein distance, for "did you mean" hints on misspelt flags, keys and types.
size_t edit_distance(const std::string& a, const std::string& b);

// "a, b, c or d", for messages that list the values a setting takes.
std::string either_of(const std::vector<std::string>& options);

// The option nearest to `word` if it is a near miss (edit distance 1 or 2), else "".
std::string closest_match(const std::string& word, const std::vector<std::string>& options);

}  // namespace myelin
