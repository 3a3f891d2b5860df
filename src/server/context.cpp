#include "server/context.h"

#include <filesystem>

#include "server/api.h"

namespace myelin::server {

namespace {

std::vector<std::string> roots_of(const ServeOptions& o) {
  std::vector<std::string> roots = {o.data_dir};
  roots.insert(roots.end(), o.allow_dirs.begin(), o.allow_dirs.end());
  return roots;
}

const std::string& made(const std::string& dir) {
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace

Context::Context(const ServeOptions& o)
    : options(o),
      db((made(o.data_dir), o.data_dir + "/myelin.db")),
      auth(db, o.data_dir, o.users),
      paths(roots_of(o)) {
  create_schema(db);
  for (const std::string& d : {jobs_dir(), datasets_dir(), uploads_dir()}) made(d);
}

void require_owner(const Identity& who, int64_t owner, const std::string& what) {
  if (!who.admin && who.user != owner)
    throw ApiError(403, "only the owner of " + what + " or an admin may do this");
}

}  // namespace myelin::server
