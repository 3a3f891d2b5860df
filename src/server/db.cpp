#include "server/db.h"

#include <map>
#include <memory>

#include "core/error.h"

namespace myelin::server {

namespace {

[[noreturn]] void fail(sqlite3* db, const std::string& what) {
  throw Error("database: " + what + ": " + sqlite3_errmsg(db));
}

struct Connections {
  std::map<std::string, sqlite3*> open;
  ~Connections() {
    for (auto& [path, db] : open) sqlite3_close_v2(db);
  }
};

sqlite3* open_connection(const std::string& path) {
  sqlite3* db = nullptr;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(path.c_str(), &db, flags, nullptr) != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close_v2(db);
    throw Error("cannot open the database " + path + ": " + msg);
  }
  sqlite3_busy_timeout(db, 10000);
  sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
               nullptr, nullptr, nullptr);
  return db;
}

}  // namespace

Statement::Statement(sqlite3* db, const std::string& sql) : db_(db) {
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt_, nullptr) != SQLITE_OK)
    fail(db, "cannot prepare '" + sql + "'");
}

Statement::~Statement() {
  sqlite3_finalize(stmt_);
}

Statement& Statement::bind(int index, const SqlValue& v) {
  int rc = SQLITE_OK;
  if (std::holds_alternative<std::nullptr_t>(v))
    rc = sqlite3_bind_null(stmt_, index);
  else if (auto* i = std::get_if<int64_t>(&v))
    rc = sqlite3_bind_int64(stmt_, index, *i);
  else if (auto* d = std::get_if<double>(&v))
    rc = sqlite3_bind_double(stmt_, index, *d);
  else {
    const std::string& s = std::get<std::string>(v);
    rc = sqlite3_bind_text(stmt_, index, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
  }
  if (rc != SQLITE_OK) fail(db_, "cannot bind parameter " + std::to_string(index));
  return *this;
}

bool Statement::step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  fail(db_, "step of '" + std::string(sqlite3_sql(stmt_)) + "'");
}

void Statement::reset() {
  sqlite3_reset(stmt_);
}

int64_t Statement::integer(int col) const {
  return sqlite3_column_int64(stmt_, col);
}
double Statement::real(int col) const {
  return sqlite3_column_double(stmt_, col);
}
bool Statement::is_null(int col) const {
  return sqlite3_column_type(stmt_, col) == SQLITE_NULL;
}
std::string Statement::text(int col) const {
  const unsigned char* p = sqlite3_column_text(stmt_, col);
  return p ? std::string(reinterpret_cast<const char*>(p),
                         static_cast<size_t>(sqlite3_column_bytes(stmt_, col)))
           : std::string();
}

Database::Database(std::string path) : path_(std::move(path)) {
  connection();
}

sqlite3* Database::connection() const {
  thread_local Connections connections;
  auto it = connections.open.find(path_);
  if (it != connections.open.end()) return it->second;
  sqlite3* db = open_connection(path_);
  connections.open[path_] = db;
  return db;
}

void Database::exec(const std::string& sql) const {
  char* err = nullptr;
  if (sqlite3_exec(connection(), sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    throw Error("database: " + msg);
  }
}

Statement Database::query(const std::string& sql, const std::vector<SqlValue>& params) const {
  Statement s(connection(), sql);
  for (size_t i = 0; i < params.size(); ++i) s.bind(static_cast<int>(i + 1), params[i]);
  return s;
}

int64_t Database::run(const std::string& sql, const std::vector<SqlValue>& params) const {
  Statement s = query(sql, params);
  while (s.step()) {
  }
  return sqlite3_changes(connection());
}

int64_t Database::last_insert_id() const {
  return sqlite3_last_insert_rowid(connection());
}

std::optional<int64_t> Database::scalar(const std::string& sql,
                                        const std::vector<SqlValue>& params) const {
  Statement s = query(sql, params);
  if (!s.step() || s.is_null(0)) return std::nullopt;
  return s.integer(0);
}

}  // namespace myelin::server
