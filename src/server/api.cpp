#include "server/api.h"

#include <cstdio>
#include <regex>

#include "core/error.h"
#include "server/auth.h"

namespace myelin::server {

namespace {

// "/api/v1/jobs/{id}/events" -> "/api/v1/jobs/(\d+)/events"
std::string path_pattern(const std::string& path) {
  static const std::regex param(R"(\{[a-z_]+\})"), dot(R"(\.)");
  return std::regex_replace(std::regex_replace(path, dot, R"(\.)"), param, R"((\d+))");
}

std::vector<int64_t> path_ids(const Request& req) {
  std::vector<int64_t> ids;
  for (size_t i = 1; i < req.matches.size(); ++i) {
    try {
      ids.push_back(std::stoll(req.matches[i].str()));
    } catch (const std::exception&) {
      throw ApiError(404, "no such resource: " + req.path);
    }
  }
  return ids;
}

void run_guarded(const Handler& h, Access access, Auth& auth, const Request& req, Response& res) {
  answer_errors(req, res, [&] {
    Call call;
    if (access == Access::user) {
      std::optional<Identity> who = auth.identify(req);
      if (!who)
        throw ApiError(401,
                       "authentication required: send 'Authorization: Bearer TOKEN' (the "
                       "token is in the data dir's 'token' file) or log in at /login");
      call.who = *who;
    }
    call.ids = path_ids(req);
    h(req, res, call);
  });
}

const nlohmann::json* field(const nlohmann::json& j, const std::string& key) {
  auto it = j.find(key);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}

[[noreturn]] void wrong_type(const std::string& key, const std::string& expected,
                             const nlohmann::json& got) {
  throw ApiError(400, "'" + key + "' must be " + expected + ", got " + got.dump());
}

}  // namespace

void answer_errors(const Request& req, Response& res, const std::function<void()>& f) {
  try {
    f();
  } catch (const ApiError& e) {
    send_error(res, e.status, e.what());
  } catch (const UsageError& e) {
    send_error(res, 400, e.what());
  } catch (const ParseError& e) {
    send_error(res, 400, e.what());
  } catch (const DataError& e) {
    send_error(res, 400, e.what());
  } catch (const ShapeError& e) {
    send_error(res, 400, e.what());
  } catch (const nlohmann::json::type_error& e) {
    send_error(res, 400, std::string("a field has the wrong type: ") + e.what());
  } catch (const Error& e) {
    // The library's errors name what was wrong with what the request asked for (a layer that
    // does not exist, weights that do not fit); the database's are the server's own.
    bool ours = std::string(e.what()).rfind("database", 0) == 0;
    if (ours)
      std::fprintf(stderr, "myelin serve: %s %s: %s\n", req.method.c_str(), req.path.c_str(),
                   e.what());
    send_error(res, ours ? 500 : 400, e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "myelin serve: %s %s: %s\n", req.method.c_str(), req.path.c_str(),
                 e.what());
    send_error(res, 500, e.what());
  }
}

void Router::add(const std::string& method, const std::string& path, Handler h, Access access) {
  routes_.push_back({method, path});
  auto handler = [h = std::move(h), access, this](const Request& req, Response& res) {
    run_guarded(h, access, auth_, req, res);
  };
  std::string pattern = path_pattern(path);
  if (method == "GET")
    server_.Get(pattern, handler);
  else if (method == "POST")
    server_.Post(pattern, handler);
  else if (method == "PUT")
    server_.Put(pattern, handler);
  else if (method == "DELETE")
    server_.Delete(pattern, handler);
  else
    throw std::logic_error("Router: unknown method " + method);
}

nlohmann::json json_body(const Request& req) {
  if (req.body.empty()) return nlohmann::json::object();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(req.body);
  } catch (const nlohmann::json::parse_error& e) {
    throw ApiError(400, "malformed JSON at byte " + std::to_string(e.byte) +
                            ": expected a JSON object like {\"name\": \"...\"}");
  }
  if (!j.is_object()) throw ApiError(400, "the body must be a JSON object, got " + j.dump());
  return j;
}

std::optional<std::string> opt_string(const nlohmann::json& j, const std::string& key) {
  const nlohmann::json* v = field(j, key);
  if (!v) return std::nullopt;
  if (!v->is_string()) wrong_type(key, "a string", *v);
  return v->get<std::string>();
}

std::optional<double> opt_number(const nlohmann::json& j, const std::string& key) {
  const nlohmann::json* v = field(j, key);
  if (!v) return std::nullopt;
  if (!v->is_number()) wrong_type(key, "a number", *v);
  return v->get<double>();
}

std::optional<int64_t> opt_integer(const nlohmann::json& j, const std::string& key) {
  const nlohmann::json* v = field(j, key);
  if (!v) return std::nullopt;
  if (!v->is_number_integer()) wrong_type(key, "an integer", *v);
  return v->get<int64_t>();
}

std::optional<bool> opt_bool(const nlohmann::json& j, const std::string& key) {
  const nlohmann::json* v = field(j, key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) wrong_type(key, "true or false", *v);
  return v->get<bool>();
}

std::string need_string(const nlohmann::json& j, const std::string& key) {
  std::optional<std::string> s = opt_string(j, key);
  if (!s || s->empty()) throw ApiError(400, "'" + key + "' is required");
  return *s;
}

void send_json(Response& res, const nlohmann::json& body, int status) {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

void send_error(Response& res, int status, const std::string& message) {
  send_json(res, {{"error", message}, {"status", status}}, status);
}

}  // namespace myelin::server
