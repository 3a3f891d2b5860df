// Checks of exported ONNX files by the real tools: onnx.checker (Debian's python3-onnx) and
// onnxruntime (onnxruntime-node from tests/onnx, run by tests/onnx/ort_run.mjs).
#pragma once
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/runs.h"

namespace myelin::testing {

inline std::string onnx_package_dir() {
  return std::string(MYELIN_SOURCE_DIR) + "/tests/onnx";
}

// Why onnxruntime cannot run here, or "" when it can.
inline std::string onnxruntime_missing() {
  if (run_command("node --version").status != 0) return "node is not installed";
  if (!std::filesystem::exists(onnx_package_dir() + "/node_modules/onnxruntime-node"))
    return "onnxruntime-node is not installed (scripts/install-deps.sh runs npm ci in tests/onnx)";
  return "";
}

// Why onnx.checker cannot run here, or "" when it can.
inline std::string onnx_checker_missing() {
  if (run_command("/usr/bin/python3 -c 'import onnx'").status != 0)
    return "/usr/bin/python3 has no onnx module (Debian's python3-onnx)";
  return "";
}

// onnx.checker.check_model with full_check (shape inference too): "" when valid, else its words.
inline std::string onnx_checker_errors(const std::string& model) {
  Outcome r = run_command(
      "/usr/bin/python3 -c 'import onnx, sys; "
      "onnx.checker.check_model(sys.argv[1], full_check=True)' " +
      model);
  return r.status == 0 ? "" : r.output;
}

template <typename T>
void write_raw(const std::string& path, const T* data, size_t count) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(count * sizeof(T)));
}

inline std::vector<float> read_floats(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), {});
  std::vector<float> v(bytes.size() / sizeof(float));
  std::memcpy(v.data(), bytes.data(), v.size() * sizeof(float));
  return v;
}

struct OrtInput {
  std::string name, type, file;  // type: float32, int64 or int32
  std::vector<int64_t> dims;
};

// Runs `model` in onnxruntime; its outputs land in OUT_DIR/NAME.bin. The Outcome's output has
// the runtime's message when it fails.
inline Outcome run_onnxruntime(const std::string& model, const std::string& out_dir,
                               const std::vector<OrtInput>& inputs) {
  std::string cmd = "node " + onnx_package_dir() + "/ort_run.mjs " + model + " " + out_dir;
  for (const OrtInput& in : inputs) {
    std::string dims;
    for (int64_t d : in.dims) dims += (dims.empty() ? "" : "x") + std::to_string(d);
    cmd += " " + in.name + ":" + in.type + ":" + dims + ":" + in.file;
  }
  return run_command(cmd);
}

// The largest difference of `got` from `want`, absolute and relative to want's largest value.
struct Difference {
  double abs = 0, rel = 0;
};
inline Difference difference(const std::vector<float>& got, const std::vector<float>& want) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < want.size() && i < got.size(); ++i) {
    diff = std::max(diff, std::abs(double(got[i]) - double(want[i])));
    scale = std::max(scale, std::abs(double(want[i])));
  }
  return {diff, scale > 0 ? diff / scale : diff};
}

}  // namespace myelin::testing
