// libFuzzer target for the checkpoint readers: arbitrary bytes as a safetensors file and as a
// trainer-state JSON. Any myelin::Error is a clean rejection; a crash, a leak, an out-of-bounds
// read or an exception of another type is a bug.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "train/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    myelin::TensorFile f = myelin::decode_safetensors(data, size, "fuzz.safetensors");
    // What was accepted must survive a write and a second read unchanged.
    std::string again = myelin::encode_safetensors(f.tensors, f.metadata);
    myelin::TensorFile g = myelin::decode_safetensors(again.data(), again.size(), "again");
    if (g.tensors.size() != f.tensors.size()) __builtin_trap();
  } catch (const myelin::Error&) {
  }
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(data, data + size);
  } catch (const nlohmann::json::exception&) {
    return 0;  // the JSON library's own rejection; load_checkpoint turns it into a DataError
  }
  try {
    myelin::state_from_json(j, "fuzz.json");
  } catch (const myelin::Error&) {
  }
  return 0;
}
