// SQLite, thinly wrapped: one connection per thread (WAL mode lets the event streams read while
// the scheduler writes), statements with bound parameters, and transactions. Every piece of the
// server's state lives in this database; nothing is kept only in memory.
#pragma once
#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace myelin::server {

using SqlValue = std::variant<std::nullptr_t, int64_t, double, std::string>;

class Statement {
 public:
  Statement(sqlite3* db, const std::string& sql);
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  Statement(Statement&& o) noexcept : db_(o.db_), stmt_(o.stmt_) { o.stmt_ = nullptr; }

  Statement& bind(int index, const SqlValue& v);  // 1-based
  bool step();                                    // true while a row is ready
  void reset();

  int64_t integer(int col) const;
  double real(int col) const;
  std::string text(int col) const;
  bool is_null(int col) const;

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

class Database {
 public:
  explicit Database(std::string path);  // opens once to create the schema
  const std::string& path() const { return path_; }

  // This thread's connection (opened on first use, closed when the thread ends).
  sqlite3* connection() const;

  void exec(const std::string& sql) const;
  // Runs `sql` with the parameters bound in order; returns the rows changed.
  int64_t run(const std::string& sql, const std::vector<SqlValue>& params = {}) const;
  int64_t last_insert_id() const;
  // The first column of the first row, if any.
  std::optional<int64_t> scalar(const std::string& sql,
                                const std::vector<SqlValue>& params = {}) const;
  Statement query(const std::string& sql, const std::vector<SqlValue>& params = {}) const;

  // BEGIN IMMEDIATE ... COMMIT, rolled back when `fn` throws.
  template <class F>
  void transaction(F&& fn) const {
    exec("BEGIN IMMEDIATE");
    try {
      fn();
    } catch (...) {
      exec("ROLLBACK");
      throw;
    }
    exec("COMMIT");
  }

 private:
  std::string path_;
};

}  // namespace myelin::server
