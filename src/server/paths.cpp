#include "server/paths.h"

#include <filesystem>

#include "server/api.h"

namespace myelin::server {

namespace fs = std::filesystem;

namespace {

bool inside(const fs::path& p, const fs::path& root) {
  auto [r, q] = std::mismatch(root.begin(), root.end(), p.begin(), p.end());
  return r == root.end();
}

std::string joined(const std::vector<std::string>& roots) {
  std::string s;
  for (const std::string& r : roots) s += (s.empty() ? "" : ", ") + r;
  return s;
}

}  // namespace

PathGuard::PathGuard(std::vector<std::string> roots) {
  for (const std::string& r : roots) {
    std::error_code ec;
    fs::path c = fs::canonical(r, ec);
    if (!ec) roots_.push_back(c.string());
  }
}

std::string PathGuard::resolve(const std::string& path) const {
  fs::path p(path);
  for (const fs::path& part : p)
    if (part == "..") throw ApiError(403, "'" + path + "': paths may not contain '..'");
  if (!p.is_absolute()) throw ApiError(400, "'" + path + "': give an absolute path on the server");
  std::error_code ec;
  fs::path c = fs::canonical(p, ec);
  if (ec) throw ApiError(404, "'" + path + "' does not exist on the server");
  for (const std::string& r : roots_)
    if (inside(c, fs::path(r))) return c.string();
  throw ApiError(403, "'" + path + "' is outside the allowed folders (" + joined(roots_) +
                          "); start the server with --allow-dir to allow more");
}

}  // namespace myelin::server
