#include "fuzz/fuzz_util.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "common/log.h"

namespace drover::fuzz {

void Check(bool ok, std::string_view what) {
  if (ok) return;
  std::fprintf(stderr, "fuzz check failed: %.*s\n", static_cast<int>(what.size()), what.data());
  std::abort();
}

void Trace(std::string_view what) {
  static const bool verbose = std::getenv("DROVER_FUZZ_VERBOSE") != nullptr;
  if (verbose) std::fprintf(stderr, "  %.*s\n", static_cast<int>(what.size()), what.data());
}

void InitOnce() {
  static bool done = [] {
    spdlog::set_level(spdlog::level::off);
    return true;
  }();
  (void)done;
}

namespace {

json::object Ok(service::BatchService& svc, std::string_view op, std::string_view body) {
  auto r = svc.CallSync(op, *ParseJson(body));
  Check(r.ok(), std::string("fixture: ") + std::string(op) + ": " +
                    (r.ok() ? "" : r.status().ToString()));
  return r.value();
}

}  // namespace

World::World() {
  InitOnce();
  auto s = store::OpenSqliteStore(":memory:");
  Check(s.ok(), "fixture: open store");
  store = std::move(s).value();
  svc = std::make_unique<service::BatchService>(service::ServiceConfig{}, *store, clock, ids);
  Check(svc->Load().ok(), "fixture: load");
  auto key = svc->CreateAccessKey();
  Check(key.ok(), "fixture: access key");
  key_id = key->id;
  secret = key->secret;
  Ok(*svc, "CreateComputeEnvironment",
     R"({"computeEnvironmentName":"ce","type":"MANAGED",)"
     R"("computeResources":{"type":"EC2","maxvCpus":4,"subnets":["s"]}})");
  queue_arn = GetString(Ok(*svc, "CreateJobQueue",
                           R"({"jobQueueName":"q","priority":1,"computeEnvironmentOrder":)"
                           R"([{"order":1,"computeEnvironment":"ce"}]})"),
                        "jobQueueArn")
                  .value_or("");
  Ok(*svc, "RegisterJobDefinition",
     R"({"jobDefinitionName":"jd","type":"container","parameters":{"who":"world"},)"
     R"("containerProperties":{"image":"busybox","command":["echo","Ref::who"],)"
     R"("resourceRequirements":[{"type":"VCPU","value":"1"},{"type":"MEMORY","value":"256"}]}})");
  job_id = GetString(Ok(*svc, "SubmitJob", R"({"jobName":"j","jobQueue":"q","jobDefinition":"jd"})"),
                     "jobId")
               .value_or("");
  Ok(*svc, "CreateSchedulingPolicy",
     R"({"name":"sp","fairsharePolicy":{"shareDecaySeconds":60,)"
     R"("shareDistribution":[{"shareIdentifier":"a*","weightFactor":1}]}})");
  Ok(*svc, "CreateConsumableResource",
     R"({"consumableResourceName":"cr","totalQuantity":4,"resourceType":"REPLENISHABLE"})");
}

World::~World() = default;

std::string Snapshot(service::BatchService& svc, const World& w) {
  static const std::pair<const char*, const char*> kReads[] = {
      {"DescribeComputeEnvironments", "{}"},
      {"DescribeJobQueues", "{}"},
      {"DescribeJobDefinitions", "{}"},
      {"ListSchedulingPolicies", "{}"},
      {"ListConsumableResources", "{}"},
      {"ListJobs", R"({"jobQueue":"q","filters":[{"name":"JOB_NAME","values":["*"]}]})"},
  };
  std::string out;
  auto read = [&](std::string_view op, const json::value& req) {
    auto r = svc.CallSync(op, req);
    out += std::string(op) + " " + (r.ok() ? ToJson(r.value()) : r.status().ToString()) + "\n";
    return r;
  };
  for (const auto& [op, body] : kReads) (void)read(op, *ParseJson(body));
  // The details of everything listed, and its tags.
  json::array arns;
  if (auto r = read("ListSchedulingPolicies", *ParseJson("{}")); r.ok()) {
    if (const json::array* a = GetArray(*r, "schedulingPolicies")) {
      for (const auto& p : *a) arns.push_back(p.as_object().at("arn"));
    }
  }
  (void)read("DescribeSchedulingPolicies", json::object{{"arns", arns}});
  json::array jobs{json::value(w.job_id)};
  if (auto r = read("ListJobs", *ParseJson(R"({"jobQueue":"q","filters":[{"name":"JOB_NAME","values":["*"]}]})"));
      r.ok()) {
    if (const json::array* a = GetArray(*r, "jobSummaryList")) {
      for (const auto& j : *a) jobs.push_back(j.as_object().at("jobId"));
    }
  }
  (void)read("DescribeJobs", json::object{{"jobs", jobs}});
  (void)read("DescribeConsumableResource", json::object{{"consumableResource", "cr"}});
  (void)read("ListTagsForResource", json::object{{"resourceArn", w.queue_arn}});
  out += "access keys " + std::to_string(svc.AccessKeyCount()) + "\n";
  return out;
}

const std::string& LogRoot() {
  static const std::string* root = [] {
    InitOnce();
    auto dir = std::filesystem::temp_directory_path() /
               ("drover-fuzz-logs-" + std::to_string(getpid()));
    std::filesystem::remove_all(dir);
    FakeClock clock;
    auto write = [&](const char* group, const char* stream, std::string_view text) {
      auto w = logs::StreamWriter::Open(dir.string(), group, stream, 0, clock);
      Check(w.ok(), "fixture: log stream");
      Check((*w)->Write(text).ok() && (*w)->Close().ok(), "fixture: log write");
      clock.Advance(1000);
    };
    write("/aws/batch/job", "jd/default/a", "hello\nworld ERROR 42\n{\"level\":\"error\",\"n\":3}\n");
    write("/aws/batch/job", "jd/default/b", "one\ntwo three\n[INFO] four five\n");
    write("other", "s", "x=1 y=2\nlast line without newline");
    static std::string keep = dir.string();
    std::atexit([] { std::filesystem::remove_all(keep); });
    return new std::string(dir.string());
  }();
  return *root;
}

void CheckResponse(const api::HttpResponse& r) {
  Trace(std::to_string(r.status) + " " + r.body.substr(0, 300));
  Check(r.status >= 200 && r.status <= 599, "response status out of range");
  if (!r.body.empty()) Check(ParseJson(r.body).ok(), "response body is not JSON: " + r.body);
  if (r.status >= 400) {
    bool typed = false;
    for (const auto& h : r.headers) typed |= h.name == "x-amzn-ErrorType" && !h.value.empty();
    Check(typed, "error response without x-amzn-ErrorType");
  }
}

}  // namespace drover::fuzz
