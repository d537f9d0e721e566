// bench_load: SubmitJob throughput (durable: the server replies after its
// commit) over N keep-alive connections, SigV4-signed like any SDK, and the
// latency of DescribeJobs for 100 ids.
//
// Usage: bench_load --data DIR [--connections 1,8,32] [--requests 20000] [--seconds 30]
// Jobs go to a queue whose compute environment is DISABLED, so they stay
// RUNNABLE: this measures the API and the store, not job execution.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "client/client.h"

using namespace drover;

namespace {

double NowS() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(p * (v.size() - 1) + 0.5)];
}

}  // namespace

int main(int argc, char** argv) {
  std::string data = "./drover-data", conns = "1,8,32";
  int requests = 20000;
  double seconds = 30;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--data") data = argv[i + 1];
    else if (a == "--connections") conns = argv[i + 1];
    else if (a == "--requests") requests = std::stoi(argv[i + 1]);
    else if (a == "--seconds") seconds = std::stod(argv[i + 1]);
  }
  auto ep = client::Discover("", data);
  if (!ep.ok()) {
    std::fprintf(stderr, "%s\n", ep.status().message().c_str());
    return 2;
  }
  SystemClock clock;
  client::Client setup(*ep, clock);
  (void)setup.Batch("CreateComputeEnvironment",
                    {{"computeEnvironmentName", "load-ce"},
                     {"type", "MANAGED"},
                     {"state", "DISABLED"},
                     {"computeResources", json::object{{"type", "EC2"},
                                                       {"maxvCpus", 4},
                                                       {"subnets", json::array{"local"}}}}});
  (void)setup.Batch("CreateJobQueue",
                    {{"jobQueueName", "load-q"},
                     {"priority", 1},
                     {"computeEnvironmentOrder",
                      json::array{json::object{{"order", 1}, {"computeEnvironment", "load-ce"}}}}});
  json::object props{{"command", json::array{"true"}},
                     {"resourceRequirements",
                      json::array{json::object{{"type", "VCPU"}, {"value", "1"}},
                                  json::object{{"type", "MEMORY"}, {"value", "16"}}}}};
  (void)setup.Batch("RegisterJobDefinition", {{"jobDefinitionName", "load-true"},
                                              {"type", "container"},
                                              {"containerProperties", props}});
  std::vector<std::string> ids;
  std::stringstream list(conns);
  for (std::string c; std::getline(list, c, ',');) {
    int n = std::stoi(c);
    std::atomic<int> next{0}, done{0}, failed{0};
    double deadline = NowS() + seconds;
    std::vector<std::thread> threads;
    std::vector<std::vector<double>> lat(n);
    std::vector<std::string> thread_ids(n);
    double t0 = NowS();
    for (int t = 0; t < n; ++t) {
      threads.emplace_back([&, t] {
        client::Client cl(*ep, clock);
        while (next.fetch_add(1) < requests && NowS() < deadline) {
          double s = NowS();
          auto r = cl.Batch("SubmitJob", {{"jobName", "load"},
                                          {"jobQueue", "load-q"},
                                          {"jobDefinition", "load-true"}});
          lat[t].push_back((NowS() - s) * 1000);
          if (r.ok()) {
            ++done;
            thread_ids[t] = std::string(r->at("jobId").as_string());
          } else {
            ++failed;
          }
        }
      });
    }
    for (auto& th : threads) th.join();
    double elapsed = NowS() - t0;
    std::vector<double> all;
    for (auto& l : lat) all.insert(all.end(), l.begin(), l.end());
    std::printf("SubmitJob, %3d connections: %8.0f /s  (%d ok, %d failed in %.1f s)  "
                "latency p50 %.2f ms p99 %.2f ms\n",
                n, done / elapsed, done.load(), failed.load(), elapsed, Percentile(all, 0.5),
                Percentile(all, 0.99));
    for (auto& id : thread_ids) {
      if (!id.empty()) ids.push_back(id);
    }
  }
  // DescribeJobs of 100 ids (repeated ids are fine: the server looks each up).
  json::array hundred;
  for (int i = 0; i < 100 && !ids.empty(); ++i) hundred.emplace_back(ids[i % ids.size()]);
  std::vector<double> d;
  for (int i = 0; i < 200; ++i) {
    double s = NowS();
    auto r = setup.Batch("DescribeJobs", {{"jobs", hundred}});
    if (!r.ok()) return 1;
    d.push_back((NowS() - s) * 1000);
  }
  std::printf("DescribeJobs(100 ids): p50 %.2f ms p99 %.2f ms\n", Percentile(d, 0.5),
              Percentile(d, 0.99));
  return 0;
}
