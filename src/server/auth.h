// Who may call the API. At first start a random token is written to DATA_DIR/token (mode 0600);
// `Authorization: Bearer TOKEN` or the session cookie that /login sets identifies the caller.
// With --users the server also keeps accounts: passwords hashed with libsodium's crypto_pwhash
// (Argon2id); the first account made is the admin. The token's holder is always an admin.
#pragma once
#include <optional>
#include <string>

#include "server/api.h"
#include "server/db.h"

namespace myelin::server {

inline constexpr const char* kSessionCookie = "myelin_session";

class Auth {
 public:
  Auth(const Database& db, const std::string& data_dir, bool users);

  const std::string& token() const { return token_; }
  bool users() const { return users_; }

  std::optional<Identity> identify(const Request& req) const;

  // A new session for whoever proved themselves; returns the cookie's value.
  std::string login_with_token(const std::string& token) const;
  std::string login_with_password(const std::string& name, const std::string& password) const;
  void logout(const Request& req) const;

  // The first account may be made by anyone holding the token (or on the login page while there
  // is none); later ones by an admin. Returns the new user's id.
  Identity create_user(const std::string& name, const std::string& password) const;
  bool has_users() const;

 private:
  std::string new_session(int64_t user) const;
  std::optional<Identity> from_session(const std::string& sid) const;

  const Database& db_;
  std::string token_;
  bool users_;
};

std::string session_cookie_header(const std::string& sid);  // HttpOnly, SameSite=Strict
std::string random_hex(size_t bytes);

}  // namespace myelin::server
