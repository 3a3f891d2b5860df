#include "server/auth.h"

#include <sodium.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "server/store.h"

namespace myelin::server {

namespace {

std::string read_or_create_token(const std::string& data_dir) {
  std::string path = data_dir + "/token";
  std::ifstream in(path);
  std::string token;
  if (in >> token && token.size() >= 32) return token;
  token = random_hex(24);
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << token << "\n";
    if (!out) throw Error("cannot write " + tmp);
  }
  ::chmod(tmp.c_str(), 0600);
  std::filesystem::rename(tmp, path);
  return token;
}

bool same_secret(const std::string& a, const std::string& b) {
  return a.size() == b.size() && sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string cookie_value(const Request& req, const std::string& name) {
  std::string cookies = req.get_header_value("Cookie");
  std::string key = name + "=";
  size_t pos = 0;
  while (pos < cookies.size()) {
    size_t end = cookies.find(';', pos);
    if (end == std::string::npos) end = cookies.size();
    size_t start = cookies.find_first_not_of(' ', pos);
    if (start < end && cookies.compare(start, key.size(), key) == 0)
      return cookies.substr(start + key.size(), end - start - key.size());
    pos = end + 1;
  }
  return "";
}

}  // namespace

std::string random_hex(size_t bytes) {
  std::string raw(bytes, '\0');
  randombytes_buf(raw.data(), bytes);
  std::string hex(bytes * 2 + 1, '\0');
  sodium_bin2hex(hex.data(), hex.size(), reinterpret_cast<const unsigned char*>(raw.data()), bytes);
  hex.pop_back();
  return hex;
}

std::string session_cookie_header(const std::string& sid) {
  return std::string(kSessionCookie) + "=" + sid + "; Path=/; HttpOnly; SameSite=Strict";
}

Auth::Auth(const Database& db, const std::string& data_dir, bool users) : db_(db), users_(users) {
  if (sodium_init() < 0) throw Error("libsodium failed to initialise");
  token_ = read_or_create_token(data_dir);
}

std::optional<Identity> Auth::identify(const Request& req) const {
  std::string header = req.get_header_value("Authorization");
  const std::string bearer = "Bearer ";
  if (header.compare(0, bearer.size(), bearer) == 0) {
    if (same_secret(header.substr(bearer.size()), token_)) return Identity{0, "admin", true};
    return std::nullopt;
  }
  std::string sid = cookie_value(req, kSessionCookie);
  return sid.empty() ? std::nullopt : from_session(sid);
}

std::optional<Identity> Auth::from_session(const std::string& sid) const {
  Statement s = db_.query("SELECT user_id FROM sessions WHERE id = ?", {sid});
  if (!s.step()) return std::nullopt;
  int64_t user = s.integer(0);
  if (user == 0) return Identity{0, "admin", true};
  Statement u = db_.query("SELECT name, admin FROM users WHERE id = ?", {user});
  if (!u.step()) return std::nullopt;
  return Identity{user, u.text(0), u.integer(1) != 0};
}

std::string Auth::new_session(int64_t user) const {
  std::string sid = random_hex(24);
  db_.run("INSERT INTO sessions(id, user_id, created) VALUES(?, ?, ?)", {sid, user, now_seconds()});
  return sid;
}

std::string Auth::login_with_token(const std::string& token) const {
  if (!same_secret(token, token_)) throw ApiError(401, "wrong token");
  return new_session(0);
}

std::string Auth::login_with_password(const std::string& name, const std::string& password) const {
  if (!users_) throw ApiError(400, "this server has no accounts (start it with --users)");
  Statement s = db_.query("SELECT id, hash FROM users WHERE name = ?", {name});
  bool ok = s.step() &&
            crypto_pwhash_str_verify(s.text(1).c_str(), password.c_str(), password.size()) == 0;
  if (!ok) throw ApiError(401, "wrong user name or password");
  return new_session(s.integer(0));
}

void Auth::logout(const Request& req) const {
  std::string sid = cookie_value(req, kSessionCookie);
  if (!sid.empty()) db_.run("DELETE FROM sessions WHERE id = ?", {sid});
}

bool Auth::has_users() const {
  return db_.scalar("SELECT COUNT(*) FROM users").value_or(0) > 0;
}

Identity Auth::create_user(const std::string& name, const std::string& password) const {
  if (name.empty() || name.size() > 64) throw ApiError(400, "'name' must be 1 to 64 characters");
  if (password.size() < 8) throw ApiError(400, "'password' must have at least 8 characters");
  char hash[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str(hash, password.c_str(), password.size(), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                        crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
    throw Error("out of memory while hashing the password");
  bool admin = !has_users();
  if (db_.scalar("SELECT id FROM users WHERE name = ?", {name}))
    throw ApiError(409, "user '" + name + "' exists");
  db_.run("INSERT INTO users(name, hash, admin, created) VALUES(?, ?, ?, ?)",
          {name, std::string(hash), int64_t{admin}, now_seconds()});
  return Identity{db_.last_insert_id(), name, admin};
}

}  // namespace myelin::server
