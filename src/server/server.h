// `myelin serve`: the REST API under /api/v1, its event streams, the built web UI, the job
// scheduler and the dataset builder, in one process. See docs/openapi.yaml for the routes.
#pragma once
#include <memory>

#include "server/context.h"

namespace myelin::server {

class Server {
 public:
  explicit Server(const ServeOptions& options);
  ~Server();
  // Serves until stop() (from another thread or a signal handler's thread); throws when the
  // address cannot be bound.
  void run();
  void stop();
  Context& context();
  const std::vector<Route>& routes() const;
  std::string url() const;  // the login URL with the token, printed at start

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The default data dir: $MYELIN_DATA, else $XDG_DATA_HOME/myelin, else ~/.local/share/myelin.
std::string default_data_dir();

}  // namespace myelin::server
