// Expects `f` to throw a myelin::Error whose message contains every one of `parts`; returns the
// message (empty, with a test failure, when nothing was thrown).
#pragma once
#include <gtest/gtest.h>

#include <initializer_list>
#include <string>

#include "core/error.h"

namespace myelin::testing {

template <class F>
std::string expect_error(F f, std::initializer_list<std::string> parts) {
  try {
    f();
  } catch (const Error& e) {
    std::string msg = e.what();
    for (const auto& p : parts)
      EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
    return msg;
  }
  ADD_FAILURE() << "expected a myelin::Error";
  return "";
}

}  // namespace myelin::testing
