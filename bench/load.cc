// bench_load: Drover's load generator (issue #7). Every request is SigV4-signed
// over keep-alive connections, like an SDK's; the SubmitJob bursts drive their
// connections from one event-loop thread (see Submit).
//
// Usage: bench_load --data DIR --mode MODE[,MODE...] [options]
//   (or --endpoint URL with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)
//
// Modes (each prints one summary line per figure, "key: median unit [min..max, n] ..."):
//   submit    durable SubmitJob rate with each of --connections (default 1,8,32,128),
//             --requests per run (default 10000), bounded by --seconds (default 30),
//             --repeats runs each (default 3). Jobs go to a queue whose compute
//             environment is DISABLED: they stay RUNNABLE, so this measures the API,
//             the store and the scheduler's bookkeeping, not execution.
//   describe  DescribeJobs of 100 ids: p50 and p99 over 200 calls, per repeat.
//   list      fills a queue of its own with --list-jobs (default 10000) jobs, then
//             times listing all of them (ListJobs, every page, maxResults 1000).
//   dispatch  --jobs (default 10000) jobs running `true` (0.125 vCPU each) submitted
//             over 32 connections; jobs/s from the first submission to the last
//             job's stoppedAt (all must be SUCCEEDED); --repeats runs, one server.
//             --floor CMD runs CMD (bench_spawn_floor --only posix_spawn ...) right
//             before each burst and prints each burst's rate as a percentage of the
//             floor CMD measured just before it: a machine whose speed drifts
//             within minutes moves both alike.
//   array     a --array-size (default 10000) child array of `true`: SubmitJob latency,
//             time until every child is RUNNABLE (or further), time until all SUCCEEDED.
//   fill      submits until the DISABLED queue holds --depth jobs (scale scenario);
//             prints the server's RSS when --server-pid is given.
//   rss       prints the RSS of --server-pid.
//   ping      waits until the server answers a request (re-reading DIR/endpoint);
//             prints the time since --since-ns (CLOCK_REALTIME ns) if given.
//   --prefix P prefixes every summary key (e.g. "empty_", "deep_").
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "client/client.h"

using namespace drover;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

namespace {

double NowS() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
int64_t EpochMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(p * (v.size() - 1) + 0.5)];
}

struct Opts {
  std::string data = "./drover-data", endpoint, modes = "submit,describe", conns = "1,8,32,128";
  std::string prefix, floor_cmd;
  int requests = 10000, repeats = 3, list_jobs = 10000, jobs = 10000, array_size = 10000;
  int64_t depth = 1000000;
  double seconds = 30, timeout = 900;
  int server_pid = 0;
  int64_t since_ns = 0;
};
Opts opt;
client::Endpoint ep;
SystemClock sysclock;

// "key: median unit [min..max, n=R] extra" from one value per repeat.
void Line(const std::string& key, std::vector<double> v, const char* unit, const char* fmt,
          const std::string& extra = "") {
  std::sort(v.begin(), v.end());
  char med[64], lo[64], hi[64];
  std::snprintf(med, sizeof med, fmt, Percentile(v, 0.5));
  std::snprintf(lo, sizeof lo, fmt, v.empty() ? 0 : v.front());
  std::snprintf(hi, sizeof hi, fmt, v.empty() ? 0 : v.back());
  std::printf("%s%s: %s %s [%s..%s, n=%zu]%s%s\n", opt.prefix.c_str(), key.c_str(), med, unit,
              lo, hi, v.size(), extra.empty() ? "" : "  ", extra.c_str());
  std::fflush(stdout);
}

bool Ok(const Result<json::object>& r, const char* what) {
  if (r.ok()) return true;
  std::fprintf(stderr, "%s: %s\n", what, r.status().message().c_str());
  return false;
}

// A compute environment, a queue and a definition of `true` (idempotent:
// "already exists" errors are ignored).
void Setup(client::Client& c, const std::string& name, bool enabled, double vcpus) {
  (void)c.Batch("CreateComputeEnvironment",
                {{"computeEnvironmentName", name + "-ce"},
                 {"type", "MANAGED"},
                 {"state", enabled ? "ENABLED" : "DISABLED"},
                 {"computeResources", json::object{{"type", "EC2"},
                                                   {"maxvCpus", 256},
                                                   {"subnets", json::array{"local"}}}}});
  (void)c.Batch("CreateJobQueue",
                {{"jobQueueName", name + "-q"},
                 {"priority", 1},
                 {"computeEnvironmentOrder",
                  json::array{json::object{{"order", 1}, {"computeEnvironment", name + "-ce"}}}}});
  char v[32];
  std::snprintf(v, sizeof v, "%g", vcpus);
  json::object props{{"command", json::array{"true"}},
                     {"resourceRequirements",
                      json::array{json::object{{"type", "VCPU"}, {"value", v}},
                                  json::object{{"type", "MEMORY"}, {"value", "16"}}}}};
  (void)c.Batch("RegisterJobDefinition", {{"jobDefinitionName", name + "-true"},
                                          {"type", "container"},
                                          {"containerProperties", props}});
}

struct Burst {
  double rate = 0, p50 = 0, p99 = 0, elapsed = 0;
  int ok = 0, failed = 0;
  std::vector<std::string> ids;  // in submission order per thread, merged
};

// `requests` SubmitJobs over `n` keep-alive connections, bounded by `seconds`.
// With `retry`, refused submissions (429) are retried until `requests`
// succeeded. Every request is built, SigV4-signed and its reply parsed as the
// SDKs do (client::EncodeBatchRequest, the same bytes client::Client sends),
// but the connections are driven from one event-loop thread, as load
// generators such as wrk do: a thread per connection, blocking in recv,
// cost the 2 shared cores about 37 µs of CPU per request (half of it waking
// and switching threads), taken from the server under test.
Burst Submit(const std::string& name, int n, int requests, double seconds, bool keep_ids,
             bool retry = false) {
  asio::io_context io(1);
  std::string hostport = ep.url.substr(7);
  hostport = hostport.substr(0, hostport.find('/'));
  size_t colon = hostport.rfind(':');
  tcp::resolver resolver(io);
  beast::error_code rec;
  auto where = resolver.resolve(hostport.substr(0, colon),
                                colon == std::string::npos ? "80" : hostport.substr(colon + 1), rec);
  int next = 0, done = 0, failed = 0;  // (one thread: no atomics)
  double deadline = NowS() + seconds;
  std::vector<double> lat;
  lat.reserve(requests);
  std::vector<std::vector<std::string>> ids(n);
  const json::object req{{"jobName", "load"}, {"jobQueue", name + "-q"},
                         {"jobDefinition", name + "-true"}};
  auto conn = [&](int t) -> asio::awaitable<void> {
    tcp::socket sock(io);
    beast::flat_buffer buf;
    // (Re)connects; false when the server cannot be reached.
    auto connect = [&]() -> asio::awaitable<bool> {
      beast::error_code ignored;
      sock.close(ignored);
      buf.clear();
      auto [ec, unused] = co_await asio::async_connect(sock, where, kTuple);
      if (ec) {
        std::fprintf(stderr, "connect: %s\n", ec.message().c_str());
        co_return false;
      }
      sock.set_option(tcp::no_delay(true));
      co_return true;
    };
    if (!co_await connect()) co_return;
    asio::steady_timer pause(io);
    while (next++ < requests && NowS() < deadline) {
      for (int broken = 0;;) {
        double s = NowS();
        std::string bytes = client::EncodeBatchRequest(ep, EpochMs(), "SubmitJob", req);
        auto [wec, wn] = co_await asio::async_write(sock, asio::buffer(bytes), kTuple);
        http::response<http::string_body> res;
        beast::error_code ec = wec;
        if (!ec) std::tie(ec, wn) = co_await http::async_read(sock, buf, res, kTuple);
        if (ec) {  // a kept-alive connection the server closed: reconnect once, as Client does
          if (++broken < 2 && co_await connect()) continue;
          std::fprintf(stderr, "SubmitJob: %s\n", ec.message().c_str());
          ++failed;
          co_return;
        }
        lat.push_back((NowS() - s) * 1000);
        auto body = ParseJson(res.body());
        const json::object* obj = body.ok() && body->is_object() ? &body->as_object() : nullptr;
        auto id = obj ? GetString(*obj, "jobId") : std::nullopt;
        bool ok = res.result_int() == 200 && id;
        if (ok && (keep_ids || ids[t].empty())) ids[t].push_back(std::string(*id));
        ++(ok ? done : failed);
        if (!res.keep_alive() && !co_await connect()) co_return;
        if (ok) break;
        if (!retry || NowS() >= deadline) break;
        pause.expires_after(std::chrono::milliseconds(5));
        co_await pause.async_wait(kTuple);
      }
    }
  };
  double t0 = NowS();
  for (int t = 0; t < n; ++t) asio::co_spawn(io, conn(t), asio::detached);
  io.run();
  Burst b;
  b.elapsed = NowS() - t0;
  b.ok = done;
  b.failed = failed;
  b.rate = done / b.elapsed;
  b.p50 = Percentile(lat, 0.5);
  b.p99 = Percentile(lat, 0.99);
  for (auto& v : ids) b.ids.insert(b.ids.end(), v.begin(), v.end());
  return b;
}

std::vector<std::string> g_ids;  // some submitted ids, for DescribeJobs

void ModeSubmit() {
  client::Client c(ep, sysclock);
  Setup(c, "load", false, 1);
  std::stringstream list(opt.conns);
  for (std::string s; std::getline(list, s, ',');) {
    int n = std::stoi(s);
    std::vector<double> rates, p50s, p99s;
    int failed = 0;
    for (int r = 0; r < opt.repeats; ++r) {
      Burst b = Submit("load", n, opt.requests, opt.seconds, false);
      rates.push_back(b.rate);
      p50s.push_back(b.p50);
      p99s.push_back(b.p99);
      failed += b.failed;
      g_ids.insert(g_ids.end(), b.ids.begin(), b.ids.end());
    }
    char extra[160];
    std::snprintf(extra, sizeof extra, "latency p50 %.2f ms p99 %.2f ms (medians), %d refused",
                  Percentile(p50s, 0.5), Percentile(p99s, 0.5), failed);
    Line("submit_c" + std::to_string(n), rates, "/s", "%.0f", extra);
  }
}

void ModeDescribe() {
  client::Client c(ep, sysclock);
  if (g_ids.empty()) {
    Setup(c, "load", false, 1);
    g_ids = Submit("load", 8, 100, 60, true).ids;
  }
  json::array hundred;
  for (int i = 0; i < 100; ++i) hundred.emplace_back(g_ids[(i * 7919) % g_ids.size()]);
  std::vector<double> p50s, p99s;
  for (int r = 0; r < opt.repeats; ++r) {
    std::vector<double> d;
    for (int i = 0; i < 200; ++i) {
      double s = NowS();
      auto res = c.Batch("DescribeJobs", {{"jobs", hundred}});
      if (!Ok(res, "DescribeJobs")) return;
      d.push_back((NowS() - s) * 1000);
    }
    p50s.push_back(Percentile(d, 0.5));
    p99s.push_back(Percentile(d, 0.99));
  }
  char extra[64];
  std::snprintf(extra, sizeof extra, "p99 %.2f ms (median)", Percentile(p99s, 0.5));
  Line("describe100_p50", p50s, "ms", "%.2f", extra);
}

void ModeList() {
  client::Client c(ep, sysclock);
  Setup(c, "list", false, 1);
  Burst b = Submit("list", 32, opt.list_jobs, 600, false, true);
  std::vector<double> t;
  size_t seen = 0;
  for (int r = 0; r < opt.repeats; ++r) {
    double s = NowS();
    seen = 0;
    std::string token;
    do {
      json::object req{{"jobQueue", "list-q"}, {"jobStatus", "RUNNABLE"}, {"maxResults", 1000}};
      if (!token.empty()) req["nextToken"] = token;
      auto res = c.Batch("ListJobs", req);
      if (!Ok(res, "ListJobs")) return;
      seen += res->at("jobSummaryList").as_array().size();
      auto it = res->find("nextToken");
      token = it == res->end() ? "" : std::string(it->value().as_string());
    } while (!token.empty());
    t.push_back((NowS() - s) * 1000);
  }
  char extra[96];
  std::snprintf(extra, sizeof extra, "%zu jobs listed (of %d submitted), pages of 1000", seen, b.ok);
  Line("list" + std::to_string(opt.list_jobs), t, "ms", "%.1f", extra);
}

// Describes `ids` in chunks of 100, in order, waiting (250 ms) at the first chunk
// whose jobs are not all finished. Returns the latest stoppedAt, and counts.
struct Drain {
  int64_t last_stop = 0;
  int succeeded = 0, failed = 0;
  bool timed_out = false;
};
Drain WaitAll(client::Client& c, const std::vector<std::string>& ids, double deadline) {
  Drain d;
  for (size_t i = 0; i < ids.size();) {
    json::array chunk;
    for (size_t k = i; k < ids.size() && k < i + 100; ++k) chunk.emplace_back(ids[k]);
    auto res = c.Batch("DescribeJobs", {{"jobs", chunk}});
    if (!Ok(res, "DescribeJobs")) {
      d.timed_out = true;
      return d;
    }
    int fin = 0, ok = 0, bad = 0;
    int64_t stop = 0;
    for (const auto& j : res->at("jobs").as_array()) {
      std::string_view st = j.at("status").as_string();
      if (st == "SUCCEEDED" || st == "FAILED") {
        ++fin;
        (st == "SUCCEEDED" ? ok : bad)++;
        stop = std::max(stop, j.at("stoppedAt").to_number<int64_t>());
      }
    }
    if (fin == static_cast<int>(chunk.size())) {
      d.succeeded += ok;
      d.failed += bad;
      d.last_stop = std::max(d.last_stop, stop);
      i += chunk.size();
      continue;
    }
    if (NowS() > deadline) {
      d.timed_out = true;
      return d;
    }
    // (The figure is the last job's own stoppedAt, not when this poll saw it: the
    // poll only has to come eventually, and every poll is server CPU the jobs
    // being measured do not get. AWS's own waiters poll every few seconds.)
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  return d;
}

// Runs `cmd` (bench_spawn_floor) and returns the rate of its
// "spawn_floor_posix_spawn: R /s ..." line, or -1.
double RunFloor(const std::string& cmd) {
  FILE* f = ::popen(cmd.c_str(), "r");
  if (!f) return -1;
  double rate = -1;
  char buf[512];
  while (std::fgets(buf, sizeof buf, f)) {
    std::sscanf(buf, "spawn_floor_posix_spawn: %lf", &rate);
  }
  return ::pclose(f) == 0 ? rate : -1;
}

void ModeDispatch() {
  client::Client c(ep, sysclock);
  Setup(c, "dispatch", true, 0.125);
  // --repeats bursts one after the other on the same server (the jobs of the
  // earlier ones finished: they only sit in its memory and its log directory).
  std::vector<double> rates, floors, ratios;
  std::string extra;
  for (int r = 0; r < opt.repeats; ++r) {
    if (!opt.floor_cmd.empty()) {
      double f = RunFloor(opt.floor_cmd);
      if (f <= 0) {
        std::printf("%sdispatch_vs_floor_paired: failed (%s printed no posix_spawn rate)\n",
                    opt.prefix.c_str(), opt.floor_cmd.c_str());
        return;
      }
      floors.push_back(f);
    }
    double deadline = NowS() + opt.timeout;
    int64_t t0 = EpochMs();
    Burst b = Submit("dispatch", 32, opt.jobs, opt.timeout, true, true);
    int64_t submitted = EpochMs();
    Drain d = WaitAll(c, b.ids, deadline);
    if (d.timed_out) {
      std::printf("%sdispatch%d: timed out (%d of %zu finished)\n", opt.prefix.c_str(), opt.jobs,
                  d.succeeded + d.failed, b.ids.size());
      return;
    }
    double secs = (d.last_stop - t0) / 1000.0;
    rates.push_back(d.succeeded / secs);
    if (!floors.empty()) ratios.push_back(100 * rates.back() / floors.back());
    char line[160];
    std::snprintf(line, sizeof line,
                  "%d SUCCEEDED, %d FAILED in %.1f s; submission took %.1f s (%d refused, retried)",
                  d.succeeded, d.failed, secs, (submitted - t0) / 1000.0, b.failed);
    if (r == 0) extra = std::string("first run: ") + line;
  }
  Line("dispatch" + std::to_string(opt.jobs), rates, "jobs/s", "%.1f", extra);
  if (!ratios.empty()) {
    Line("dispatch_floor_paired", floors, "/s", "%.0f",
         "posix_spawn floor measured right before each burst");
    Line("dispatch_vs_floor_paired", ratios, "%", "%.1f",
         "each burst's rate ÷ the floor measured right before it");
  }
}

void ModeArray() {
  client::Client c(ep, sysclock);
  Setup(c, "array", true, 0.125);
  double deadline = NowS() + opt.timeout;
  double s = NowS();
  auto sub = c.Batch("SubmitJob", {{"jobName", "array"},
                                   {"jobQueue", "array-q"},
                                   {"jobDefinition", "array-true"},
                                   {"arrayProperties", json::object{{"size", opt.array_size}}}});
  double submit_ms = (NowS() - s) * 1000;
  if (!Ok(sub, "SubmitJob(array)")) return;
  std::string id(sub->at("jobId").as_string());
  double runnable_s = -1, drain_s = -1;
  std::string final_status;
  while (NowS() < deadline) {
    auto d = c.Batch("DescribeJobs", {{"jobs", json::array{id}}});
    if (!Ok(d, "DescribeJobs")) return;
    const json::object& job = d->at("jobs").as_array()[0].as_object();
    const json::object& sum = job.at("arrayProperties").at("statusSummary").as_object();
    int64_t waiting = sum.at("SUBMITTED").to_number<int64_t>() + sum.at("PENDING").to_number<int64_t>();
    if (runnable_s < 0 && waiting == 0) runnable_s = NowS() - s;
    std::string_view st = job.at("status").as_string();
    if (st == "SUCCEEDED" || st == "FAILED") {
      final_status = std::string(st);
      drain_s = NowS() - s;
      if (job.contains("stoppedAt") && job.contains("createdAt")) {
        drain_s = (job.at("stoppedAt").to_number<int64_t>() -
                   job.at("createdAt").to_number<int64_t>()) / 1000.0;
      }
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(runnable_s < 0 ? 10 : 100));
  }
  std::string n = std::to_string(opt.array_size);
  Line("array" + n + "_submit", {submit_ms}, "ms", "%.1f");
  Line("array" + n + "_all_runnable", {runnable_s}, "s", "%.2f", "(client polls every 10 ms)");
  char extra[96];
  std::snprintf(extra, sizeof extra, "parent %s; %.1f jobs/s", final_status.c_str(),
                drain_s > 0 ? opt.array_size / drain_s : 0.0);
  Line("array" + n + "_drain", {drain_s}, "s", "%.1f", extra);
}

int64_t RssKiB(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(f, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

void ModeRss() {
  if (opt.server_pid) Line("rss", {RssKiB(opt.server_pid) / 1024.0}, "MiB", "%.0f");
}

void ModeFill() {
  client::Client c(ep, sysclock);
  Setup(c, "load", false, 1);
  // How many are there already: count by pages would be slow at depth; the
  // caller tracks it, so fill submits exactly `depth` more.
  double s = NowS();
  Burst b = Submit("load", 32, static_cast<int>(opt.depth), opt.timeout, false, true);
  char extra[96];
  std::snprintf(extra, sizeof extra, "%d submitted in %.0f s (%d refused, retried)", b.ok,
                NowS() - s, b.failed);
  Line("fill", {b.rate}, "/s", "%.0f", extra);
}

void ModePing() {
  double deadline = NowS() + opt.timeout;
  while (NowS() < deadline) {
    auto e = client::Discover(opt.endpoint, opt.data);
    if (e.ok()) {
      client::Client c(*e, sysclock);
      auto r = c.Batch("DescribeJobQueues", {});
      if (r.ok()) {
        if (opt.since_ns) {
          int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
          Line("restart_to_serving", {(now - opt.since_ns) / 1e9}, "s", "%.2f");
        }
        return;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::printf("%sping: no answer within %.0f s\n", opt.prefix.c_str(), opt.timeout);
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i], v = argv[i + 1];
    if (a == "--data") opt.data = v;
    else if (a == "--endpoint") opt.endpoint = v;
    else if (a == "--mode") opt.modes = v;
    else if (a == "--connections") opt.conns = v;
    else if (a == "--requests") opt.requests = std::stoi(v);
    else if (a == "--repeats") opt.repeats = std::stoi(v);
    else if (a == "--seconds") opt.seconds = std::stod(v);
    else if (a == "--timeout") opt.timeout = std::stod(v);
    else if (a == "--list-jobs") opt.list_jobs = std::stoi(v);
    else if (a == "--jobs") opt.jobs = std::stoi(v);
    else if (a == "--array-size") opt.array_size = std::stoi(v);
    else if (a == "--depth") opt.depth = std::stoll(v);
    else if (a == "--server-pid") opt.server_pid = std::stoi(v);
    else if (a == "--since-ns") opt.since_ns = std::stoll(v);
    else if (a == "--prefix") opt.prefix = v;
    else if (a == "--floor") opt.floor_cmd = v;
    else {
      std::fprintf(stderr, "unknown flag %s\n", a.c_str());
      return 2;
    }
  }
  std::stringstream modes(opt.modes);
  for (std::string m; std::getline(modes, m, ',');) {
    if (m == "ping") {
      ModePing();
      continue;
    }
    auto e = client::Discover(opt.endpoint, opt.data);
    if (!e.ok()) {
      std::fprintf(stderr, "%s\n", e.status().message().c_str());
      return 2;
    }
    ep = *e;
    if (m == "submit") ModeSubmit();
    else if (m == "describe") ModeDescribe();
    else if (m == "list") ModeList();
    else if (m == "dispatch") ModeDispatch();
    else if (m == "array") ModeArray();
    else if (m == "fill") ModeFill();
    else if (m == "rss") ModeRss();
    else {
      std::fprintf(stderr, "unknown mode %s\n", m.c_str());
      return 2;
    }
  }
  return 0;
}
