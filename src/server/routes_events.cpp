// Server-Sent Events: a job's events (metrics lines, state changes, log lines) and the global
// change log. Each event carries its number as the SSE id, so a client that reconnects with
// Last-Event-ID gets exactly what it missed: no gap, no duplicate.
#include "server/jobs.h"
#include "server/routes.h"

namespace myelin::server {

namespace {

constexpr int kKeepAliveMs = 15000;
constexpr int kBatch = 2000;  // events written per pass

int64_t last_event_id(const Request& req) {
  std::string v = req.get_header_value("Last-Event-ID");
  if (v.empty()) v = req.get_param_value("after");
  if (v.empty()) return 0;
  try {
    return std::stoll(v);
  } catch (const std::exception&) {
    throw ApiError(400, "Last-Event-ID must be an event number, got '" + v + "'");
  }
}

std::string sse(int64_t id, const std::string& kind, const std::string& data) {
  return "id: " + std::to_string(id) + "\nevent: " + kind + "\ndata: " + data + "\n\n";
}

void start_stream(Response& res) {
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
}

// Writes what `fetch(after)` returns; waits for more while nothing is new; `finished()` ends the
// stream once everything has been sent.
template <class Fetch, class Finished>
void stream(Context& c, Response& res, int64_t after, Fetch fetch, Finished finished) {
  start_stream(res);
  res.set_chunked_content_provider(
      "text/event-stream", [&c, after, fetch, finished](size_t, httplib::DataSink& sink) mutable {
        uint64_t version = c.hub.version();
        std::string out;
        bool done = finished();  // read before the events, so none is missed at the end
        int n = fetch(after, out);
        if (!out.empty() && !sink.write(out.data(), out.size())) return false;
        if (n > 0) return true;
        if (done || c.stopping) {
          sink.done();
          return true;
        }
        if (c.hub.wait(version, kKeepAliveMs) == version) {
          static const std::string ping = ": keep-alive\n\n";
          if (!sink.write(ping.data(), ping.size())) return false;
        }
        return true;
      });
}

void job_stream(Context& c, const Request& req, Response& res, int64_t job) {
  job_json(c, job);  // 404 for an unknown job, before the stream starts
  auto fetch = [&c, job](int64_t& after, std::string& out) {
    Statement s = c.db.query(
        "SELECT seq, kind, data FROM events WHERE job = ? AND seq > ? ORDER BY seq LIMIT ?",
        {job, after, int64_t{kBatch}});
    int n = 0;
    for (; s.step(); ++n) {
      after = s.integer(0);
      out += sse(after, s.text(1), s.text(2));
    }
    return n;
  };
  // Over once the job has ended and its last event says so (the state is stored, then told).
  auto finished = [&c, job] {
    Statement s = c.db.query("SELECT state FROM jobs WHERE id = ?", {job});
    if (!s.step()) return true;
    std::string state = s.text(0);
    if (!is_final(state)) return false;
    Statement e =
        c.db.query("SELECT kind, data FROM events WHERE job = ? ORDER BY seq DESC LIMIT 1", {job});
    return e.step() && e.text(0) == "state" &&
           nlohmann::json::parse(e.text(1)).value("state", "") == state;
  };
  stream(c, res, last_event_id(req), fetch, finished);
}

void change_stream(Context& c, const Request& req, Response& res) {
  auto fetch = [&c](int64_t& after, std::string& out) {
    Statement s =
        c.db.query("SELECT id, kind, ref, data FROM changes WHERE id > ? ORDER BY id LIMIT ?",
                   {after, int64_t{kBatch}});
    int n = 0;
    for (; s.step(); ++n) {
      after = s.integer(0);
      nlohmann::json data = nlohmann::json::parse(s.text(3));
      data["id"] = s.integer(2);
      out += sse(after, s.text(1), data.dump());
    }
    return n;
  };
  int64_t after = last_event_id(req);
  if (req.has_param("from") && req.get_param_value("from") == "now")
    after = c.db.scalar("SELECT MAX(id) FROM changes").value_or(0);
  stream(c, res, after, fetch, [] { return false; });
}

}  // namespace

void add_event_routes(Router& r, Context& c) {
  r.add("GET", "/api/v1/jobs/{id}/events",
        [&c](const Request& req, Response& res, const Call& call) {
          job_stream(c, req, res, call.id());
        });
  r.add("GET", "/api/v1/events",
        [&c](const Request& req, Response& res, const Call&) { change_stream(c, req, res); });
  // The whole history at once (a chart's first draw): metrics events after `after`.
  r.add("GET", "/api/v1/jobs/{id}/metrics",
        [&c](const Request& req, Response& res, const Call& call) {
          job_json(c, call.id());
          int64_t after = last_event_id(req);
          Statement s = c.db.query(
              "SELECT seq, data FROM events WHERE job = ? AND kind = 'metrics' AND seq > ? ORDER "
              "BY seq",
              {call.id(), after});
          std::string out = "{\"events\":[";
          int64_t last = after;
          for (bool first = true; s.step(); first = false) {
            last = s.integer(0);
            out += (first ? "" : ",") + s.text(1);
          }
          out += "],\"last\":" + std::to_string(last) + "}";
          res.set_content(out, "application/json");
        });
}

}  // namespace myelin::server
