// docs/openapi.yaml and the routes `myelin serve` registers must agree: every (method, path) the
// Router holds is documented, and the file documents no route the server lacks.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <set>
#include <string>
#include <utility>

#include "server/server.h"
#include "support/data_files.h"

namespace {

using RouteSet = std::set<std::pair<std::string, std::string>>;  // (METHOD, path)

RouteSet server_routes() {
  myelin::testing::TempDir dir;
  myelin::server::ServeOptions o;
  o.data_dir = dir / "data";
  o.port = 47613;  // never bound: the server listens only in run()
  o.threads = 2;
  RouteSet out;
  {
    myelin::server::Server server(o);
    for (const myelin::server::Route& r : server.routes()) out.insert({r.method, r.path});
  }  // the server (its scheduler and builder threads) ends before the folder goes
  return out;
}

RouteSet documented_routes(const std::string& file) {
  static const std::set<std::string> methods = {"get",  "put",     "post",  "delete",
                                                "head", "options", "patch", "trace"};
  YAML::Node doc = YAML::LoadFile(file);
  EXPECT_EQ(doc["openapi"].as<std::string>(""), "3.0.3");
  RouteSet out;
  for (const auto& path : doc["paths"]) {
    for (const auto& op : path.second) {
      std::string m = op.first.as<std::string>();
      if (!methods.count(m)) continue;  // parameters, summary, ...
      std::transform(m.begin(), m.end(), m.begin(),
                     [](unsigned char c) { return std::toupper(c); });
      out.insert({m, path.first.as<std::string>()});
    }
  }
  return out;
}

std::string listed(const RouteSet& a, const RouteSet& b) {
  std::string s;
  for (const auto& r : a)
    if (!b.count(r)) s += "\n  " + r.first + " " + r.second;
  return s.empty() ? " (none)" : s;
}

TEST(ServerRoutes, OpenApiDocumentsExactlyTheRegisteredRoutes) {
  RouteSet served = server_routes();
  ASSERT_GT(served.size(), 10u);
  RouteSet documented = documented_routes(std::string(MYELIN_SOURCE_DIR) + "/docs/openapi.yaml");
  EXPECT_EQ(served, documented) << "served but not in docs/openapi.yaml:"
                                << listed(served, documented)
                                << "\nin docs/openapi.yaml but not served:"
                                << listed(documented, served);
}

TEST(ServerRoutes, NoRouteIsRegisteredTwice) {
  myelin::testing::TempDir dir;
  myelin::server::ServeOptions o;
  o.data_dir = dir / "data";
  o.port = 47614;
  o.threads = 2;
  myelin::server::Server server(o);
  RouteSet seen;
  for (const myelin::server::Route& r : server.routes())
    EXPECT_TRUE(seen.insert({r.method, r.path}).second) << r.method << " " << r.path;
}

}  // namespace
