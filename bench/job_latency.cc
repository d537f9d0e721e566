// bench_job_latency: how long a job takes from SubmitJob to RUNNING and to
// SUCCEEDED on an idle host, for a job running `true`.
//
// Usage: bench_job_latency --data DIR [--jobs N] [--prefix KEYPREFIX]
// (or DROVER_ENDPOINT + AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY). Creates the
// compute environment "bench-ce", queue "bench-q" and definition "bench-true"
// when missing, then submits N jobs one at a time, each after the previous one
// finished, so every job meets an idle host.
//
// Two views of each job:
// - server side, from the job's own timestamps: createdAt -> startedAt
//   (SubmitJob accepted -> process exec'd) and createdAt -> stoppedAt;
// - client side: SubmitJob sent -> DescribeJobs first shows RUNNING /
//   SUCCEEDED, polling as fast as one connection allows (includes the
//   polling's own round trips).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "client/client.h"

using namespace drover;

namespace {

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * (v.size() - 1) + 0.5);
  return v[i];
}

void Report(const char* what, const std::vector<double>& ms) {
  std::printf("%-44s p50 %7.2f ms  p90 %7.2f ms  p99 %7.2f ms  (n=%zu)\n", what,
              Percentile(ms, 0.5), Percentile(ms, 0.9), Percentile(ms, 0.99), ms.size());
}

double NowMs() {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

int main(int argc, char** argv) {
  std::string data = "./drover-data", endpoint, prefix;
  int jobs = 200;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--data") data = argv[i + 1];
    else if (a == "--endpoint") endpoint = argv[i + 1];
    else if (a == "--jobs") jobs = std::stoi(argv[i + 1]);
    else if (a == "--prefix") prefix = argv[i + 1];
  }
  auto ep = client::Discover(endpoint, data);
  if (!ep.ok()) {
    std::fprintf(stderr, "%s\n", ep.status().message().c_str());
    return 2;
  }
  SystemClock clock;
  client::Client c(*ep, clock);
  (void)c.Batch("CreateComputeEnvironment",
                {{"computeEnvironmentName", "bench-ce"},
                 {"type", "MANAGED"},
                 {"computeResources", json::object{{"type", "EC2"},
                                                   {"maxvCpus", 64},
                                                   {"subnets", json::array{"local"}}}}});
  (void)c.Batch("CreateJobQueue",
                {{"jobQueueName", "bench-q"},
                 {"priority", 1},
                 {"computeEnvironmentOrder",
                  json::array{json::object{{"order", 1}, {"computeEnvironment", "bench-ce"}}}}});
  json::array needs{json::object{{"type", "VCPU"}, {"value", "1"}},
                    json::object{{"type", "MEMORY"}, {"value", "16"}}};
  json::object props{{"command", json::array{"true"}}, {"resourceRequirements", needs}};
  auto def = c.Batch("RegisterJobDefinition", {{"jobDefinitionName", "bench-true"},
                                               {"type", "container"},
                                               {"containerProperties", props}});
  if (!def.ok()) {
    std::fprintf(stderr, "setup failed: %s\n", def.status().message().c_str());
    return 1;
  }
  std::vector<double> server_running, server_done, client_running, client_done, sent_to_start;
  for (int i = 0; i < jobs; ++i) {
    double t0 = NowMs();
    int64_t sent_epoch_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count();
    auto sub = c.Batch("SubmitJob", {{"jobName", "bench"},
                                     {"jobQueue", "bench-q"},
                                     {"jobDefinition", "bench-true"}});
    if (!sub.ok()) {
      std::fprintf(stderr, "submit failed: %s\n", sub.status().message().c_str());
      return 1;
    }
    std::string id(sub->at("jobId").as_string());
    bool saw_running = false;
    for (;;) {
      auto d = c.Batch("DescribeJobs", {{"jobs", json::array{id}}});
      if (!d.ok()) return 1;
      const json::object& job = d->at("jobs").as_array()[0].as_object();
      std::string_view status = job.at("status").as_string();
      if (!saw_running && (status == "RUNNING" || status == "SUCCEEDED" || status == "FAILED")) {
        saw_running = true;
        client_running.push_back(NowMs() - t0);
      }
      if (status == "SUCCEEDED" || status == "FAILED") {
        client_done.push_back(NowMs() - t0);
        int64_t created = job.at("createdAt").to_number<int64_t>();
        server_running.push_back(static_cast<double>(job.at("startedAt").to_number<int64_t>() - created));
        server_done.push_back(static_cast<double>(job.at("stoppedAt").to_number<int64_t>() - created));
        sent_to_start.push_back(static_cast<double>(job.at("startedAt").to_number<int64_t>() - sent_epoch_ms));
        if (status == "FAILED") std::fprintf(stderr, "job %s FAILED\n", id.c_str());
        break;
      }
    }
  }
  std::printf("%d jobs running `true`, one at a time on an idle host\n", jobs);
  Report("server: SubmitJob accepted -> RUNNING", server_running);
  Report("server: SubmitJob accepted -> SUCCEEDED", server_done);
  Report("client: SubmitJob sent -> sees RUNNING", client_running);
  Report("client: SubmitJob sent -> sees SUCCEEDED", client_done);
  Report("SubmitJob sent -> job's startedAt (same clock)", sent_to_start);
  // One "key: value unit" line per figure, for bench/compare.sh.
  auto key = [&](const char* k, const std::vector<double>& ms) {
    std::printf("%slatency_%s_p50: %.1f ms\n%slatency_%s_p99: %.1f ms\n", prefix.c_str(), k,
                Percentile(ms, 0.5), prefix.c_str(), k, Percentile(ms, 0.99));
  };
  key("running", server_running);
  key("succeeded", server_done);
  key("client_running", client_running);
  key("sent_to_start", sent_to_start);
  return 0;
}
