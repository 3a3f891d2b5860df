// Logging in and out, and accounts.
#include "server/routes.h"

namespace myelin::server {

namespace {

void set_session(Response& res, const std::string& sid) {
  res.set_header("Set-Cookie", session_cookie_header(sid));
}

void login(Context& c, const Request& req, Response& res) {
  nlohmann::json body = json_body(req);
  std::string sid;
  if (auto token = opt_string(body, "token"))
    sid = c.auth.login_with_token(*token);
  else
    sid = c.auth.login_with_password(need_string(body, "name"), need_string(body, "password"));
  set_session(res, sid);
  send_json(res, {{"ok", true}});
}

nlohmann::json identity_json(const Identity& who, const Context& c) {
  return {{"user", who.user}, {"name", who.name}, {"admin", who.admin}, {"users", c.auth.users()}};
}

}  // namespace

void add_auth_routes(Router& r, Context& c) {
  // A link that logs a browser in: the URL `myelin serve` prints.
  r.add(
      "GET", "/login",
      [&c](const Request& req, Response& res, const Call&) {
        set_session(res, c.auth.login_with_token(req.get_param_value("token")));
        res.set_redirect("/");
      },
      Access::open);
  r.add(
      "POST", "/api/v1/login",
      [&c](const Request& req, Response& res, const Call&) { login(c, req, res); }, Access::open);
  r.add("POST", "/api/v1/logout", [&c](const Request& req, Response& res, const Call&) {
    c.auth.logout(req);
    res.set_header("Set-Cookie", std::string(kSessionCookie) + "=; Path=/; Max-Age=0");
    send_json(res, {{"ok", true}});
  });
  r.add("GET", "/api/v1/me", [&c](const Request&, Response& res, const Call& call) {
    send_json(res, identity_json(call.who, c));
  });
  r.add("POST", "/api/v1/users", [&c](const Request& req, Response& res, const Call& call) {
    if (!c.auth.users()) throw ApiError(400, "this server has no accounts (start it with --users)");
    if (c.auth.has_users() && !call.who.admin) throw ApiError(403, "only an admin may add users");
    nlohmann::json body = json_body(req);
    Identity made = c.auth.create_user(need_string(body, "name"), need_string(body, "password"));
    send_json(res, identity_json(made, c), 201);
  });
}

}  // namespace myelin::server
