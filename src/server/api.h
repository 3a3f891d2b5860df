// The REST layer's shared pieces: errors that become 4xx JSON answers, typed reads of request
// bodies, and the Router, which registers every route with httplib, checks who is calling and
// turns any exception into a JSON error so that no request can take the server down.
#pragma once
#include <httplib.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace myelin::server {

class Auth;

class ApiError : public std::runtime_error {
 public:
  ApiError(int status, const std::string& message) : std::runtime_error(message), status(status) {}
  int status;
};

struct Identity {
  int64_t user = 0;  // 0: the server token's holder
  std::string name;
  bool admin = false;
};

// What a handler knows about its request beyond httplib's.
struct Call {
  Identity who;
  std::vector<int64_t> ids;  // the numeric {…} parts of the path, in order
  int64_t id(size_t i = 0) const { return ids.at(i); }
};

using Request = httplib::Request;
using Response = httplib::Response;
using Handler = std::function<void(const Request&, Response&, const Call&)>;

enum class Access { open, user };

struct Route {
  std::string method, path;  // path as in docs/openapi.yaml: /api/v1/jobs/{id}
};

class Router {
 public:
  Router(httplib::Server& server, Auth& auth) : server_(server), auth_(auth) {}
  void add(const std::string& method, const std::string& path, Handler h,
           Access access = Access::user);
  const std::vector<Route>& routes() const { return routes_; }

 private:
  httplib::Server& server_;
  Auth& auth_;
  std::vector<Route> routes_;
};

// The JSON object of a request body; 400 naming the offset for malformed JSON.
nlohmann::json json_body(const Request& req);

// Typed fields of a JSON object; a wrong type is a 400 naming the field and what it expected.
std::optional<std::string> opt_string(const nlohmann::json& j, const std::string& key);
std::optional<double> opt_number(const nlohmann::json& j, const std::string& key);
std::optional<int64_t> opt_integer(const nlohmann::json& j, const std::string& key);
std::optional<bool> opt_bool(const nlohmann::json& j, const std::string& key);
std::string need_string(const nlohmann::json& j, const std::string& key);

// Runs f; any exception it throws becomes a JSON error answer: the caller's mistakes (ApiError,
// the library's UsageError, ParseError, DataError, ShapeError...) a 4xx naming what was wrong,
// the server's own failures a 500 (logged to stderr).
void answer_errors(const Request& req, Response& res, const std::function<void()>& f);

void send_json(Response& res, const nlohmann::json& body, int status = 200);
void send_error(Response& res, int status, const std::string& message);

}  // namespace myelin::server
