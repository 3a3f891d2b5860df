// The convolution algorithms cuDNN's search chose, per shape key, kept in memory for the process
// and in a file across processes, so that a later `myelin train` of the same network on the same
// kind of card starts without searching again (the search is most of a small network's start-up:
// about 0.8 s of ResNet-9's at batch 512). The file is one line per choice, appended with one
// write each; it is read as untrusted: a line that does not parse or holds out-of-range values is
// skipped, and a bad or missing file only means searching again.
//
// Where: $MYELIN_CUDA_ALGO_CACHE (a file; "off" keeps choices in memory only), else
// $XDG_CACHE_HOME/myelin/ or ~/.cache/myelin/, one file per card model, cuDNN version and
// compute capability.
#pragma once
#include <cstddef>
#include <map>
#include <string>

namespace myelin::cuda {

struct ConvAlgo;

class AlgoCache {
 public:
  // `card` names the file (the device name, cuDNN version, compute capability); no file when
  // the environment says "off" or no cache directory can be made.
  explicit AlgoCache(const std::string& card);
  const ConvAlgo* find(const std::string& key) const;
  void insert(const std::string& key, const ConvAlgo& a);  // never throws on file errors
  const std::string& path() const { return path_; }

 private:
  void load();

  std::string path_;
  std::map<std::string, ConvAlgo> algos_;
};

}  // namespace myelin::cuda
