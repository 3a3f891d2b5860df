#include "cuda/algo_cache.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cuda/cuda_backend.h"

namespace myelin::cuda {

namespace {

namespace fs = std::filesystem;

std::string cache_dir() {
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/myelin";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/myelin";
  return "";
}

// Letters, digits, '.', '-' and '_' only: the card name becomes part of a file name.
std::string file_safe(const std::string& s) {
  std::string out;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_';
    out.push_back(ok ? c : '_');
  }
  return out;
}

}  // namespace

AlgoCache::AlgoCache(const std::string& card) {
  const char* env = std::getenv("MYELIN_CUDA_ALGO_CACHE");
  if (env && std::string(env) == "off") return;
  if (env && *env) {
    path_ = env;
  } else {
    std::string dir = cache_dir();
    if (dir.empty()) return;
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return;
    path_ = dir + "/cudnn-algos-" + file_safe(card) + ".tsv";
  }
  load();
}

// Line: key \t algo \t math \t workspace bytes \t ms. Keys hold no tabs or newlines.
void AlgoCache::load() {
  std::ifstream in(path_);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string key;
    long long algo = -1, math = -1, ws = -1;
    double ms = 0;
    if (!std::getline(f, key, '\t') || key.empty() || !(f >> algo >> math >> ws >> ms)) continue;
    // Legacy cuDNN algorithm enums stay below 16; math types are 0..3; workspaces under 1 TiB.
    if (algo < 0 || algo >= 16 || math < 0 || math > 3 || ws < 0 || ws > (1ll << 40)) continue;
    algos_[key] = ConvAlgo{static_cast<int>(algo), static_cast<cudnnMathType_t>(math),
                           static_cast<size_t>(ws), static_cast<float>(ms)};
  }
}

const ConvAlgo* AlgoCache::find(const std::string& key) const {
  auto it = algos_.find(key);
  return it == algos_.end() ? nullptr : &it->second;
}

void AlgoCache::insert(const std::string& key, const ConvAlgo& a) {
  algos_[key] = a;
  if (path_.empty() || key.find_first_of("\t\n") != std::string::npos) return;
  std::ostringstream line;
  line << key << '\t' << a.algo << '\t' << static_cast<int>(a.math) << '\t' << a.workspace << '\t'
       << a.ms << '\n';
  std::string s = line.str();
  // One append write per line: concurrent processes interleave whole lines, never half ones.
  int fd = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return;
  ssize_t wrote = ::write(fd, s.data(), s.size());
  (void)wrote;  // a failed write only means searching again next time
  ::close(fd);
}

}  // namespace myelin::cuda
