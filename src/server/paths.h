// Server-side paths a request names (dataset folders, list files) must lie under the data dir or
// an --allow-dir root once every symlink is resolved; `..` is refused outright.
#pragma once
#include <string>
#include <vector>

namespace myelin::server {

class PathGuard {
 public:
  explicit PathGuard(std::vector<std::string> roots);  // made canonical here
  // The canonical form of `path`, or ApiError 403 naming the roots when it would leave them
  // (404 when it does not exist).
  std::string resolve(const std::string& path) const;
  const std::vector<std::string>& roots() const { return roots_; }

 private:
  std::vector<std::string> roots_;
};

}  // namespace myelin::server
