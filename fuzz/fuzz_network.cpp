// libFuzzer target: network files through parse_network and build_network (training and
// inference graphs). Only myelin::Error may leave the library; any other exception or a crash
// is a finding, and so is a valid network that does not write and read back as itself.
// Seeds: fuzz/corpus/network/ (the standard networks and small files of every layer type);
// fuzz/network.dict holds the format's keywords.
#include <cstdint>
#include <string>

#include "core/error.h"
#include "model/network.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  myelin::NetworkSpec spec;
  try {
    spec = myelin::parse_network(text, "fuzz.yaml");
    myelin::build_network(spec, 3, true, 0.1);
    myelin::build_network(spec, 1, false);
  } catch (const myelin::Error&) {
    return 0;
  }
  try {
    myelin::NetworkSpec back = myelin::parse_network(myelin::write_network(spec), "fuzz.yaml");
    if (!myelin::equivalent(spec, back)) __builtin_trap();
  } catch (const myelin::Error&) {
    __builtin_trap();
  }
  return 0;
}
