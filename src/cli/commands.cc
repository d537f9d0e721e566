#include "cli/commands.h"

#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <map>
#include <set>
#include <thread>

#include "client/client.h"
#include "common/clock.h"
#include "common/json.h"
#include "images/images.h"

namespace drover::cli {
namespace {

using client::Client;

const char* const kStates[] = {"SUBMITTED", "PENDING",   "RUNNABLE", "STARTING",
                               "RUNNING",   "SUCCEEDED", "FAILED"};

// Flags every client command shares: how to reach the server, and --json.
struct Common {
  std::string endpoint, data;
  bool json = false;
  void Add(CLI::App& app) {
    app.add_option("--endpoint", endpoint, "server URL (default: DROVER_ENDPOINT or <data>/endpoint)");
    app.add_option("--data", data, "the server's data dir, for endpoint and credentials")
        ->default_str("./drover-data");
    app.add_flag("--json", json, "print JSON for scripts");
  }
};

SystemClock& TheClock() {
  static SystemClock clock;
  return clock;
}

std::unique_ptr<Client> Connect(const Common& c) {
  auto ep = client::Discover(c.endpoint, c.data);
  if (!ep.ok()) {
    std::fprintf(stderr, "drover: %s\n", ep.status().message().c_str());
    return nullptr;
  }
  return std::make_unique<Client>(std::move(ep).value(), TheClock());
}

int Fail(const Status& s) {
  std::fprintf(stderr, "drover: %s\n", s.message().c_str());
  return 1;
}

std::string Str(const json::object& o, std::string_view k) {
  auto s = GetString(o, k);
  return s ? std::string(*s) : std::string();
}

std::string Age(int64_t ms) {
  if (ms <= 0) return "-";
  int64_t s = (TheClock().NowMillis() - ms) / 1000;
  if (s < 60) return std::to_string(s) + "s";
  if (s < 3600) return std::to_string(s / 60) + "m";
  if (s < 86400) return std::to_string(s / 3600) + "h";
  return std::to_string(s / 86400) + "d";
}

// A plain text table: columns as wide as their widest cell.
void PrintTable(const std::vector<std::string>& head, const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> w(head.size());
  for (size_t i = 0; i < head.size(); ++i) w[i] = head[i].size();
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size() && i < w.size(); ++i) w[i] = std::max(w[i], r[i].size());
  }
  auto line = [&](const std::vector<std::string>& r) {
    std::string s;
    for (size_t i = 0; i < r.size(); ++i) {
      s += r[i];
      if (i + 1 < r.size()) s += std::string(w[i] - r[i].size() + 2, ' ');
    }
    std::printf("%s\n", s.c_str());
  };
  line(head);
  for (const auto& r : rows) line(r);
}

// Every item of a paginated operation.
Result<json::array> All(Client& c, std::string_view op, json::object req, std::string_view key) {
  json::array out;
  for (;;) {
    DROVER_ASSIGN_OR_RETURN(json::object page, c.Batch(op, req));
    if (const auto* items = GetArray(page, key)) {
      for (const auto& i : *items) out.push_back(i);
    }
    auto next = GetString(page, "nextToken");
    if (!next) return out;
    req["nextToken"] = *next;
  }
}

Result<json::object> DescribeJob(Client& c, const std::string& id) {
  DROVER_ASSIGN_OR_RETURN(json::object d, c.Batch("DescribeJobs", {{"jobs", json::array{id}}}));
  const auto* jobs = GetArray(d, "jobs");
  if (!jobs || jobs->empty()) return Status::Client("job " + id + " does not exist");
  return (*jobs)[0].as_object();
}

bool Terminal(const std::string& s) { return s == "SUCCEEDED" || s == "FAILED"; }

// Prints the job's log from `token` on; returns the next forward token.
Result<std::string> PrintLogs(Client& c, const std::string& group, const std::string& stream,
                              std::string token) {
  for (;;) {
    json::object req{{"logGroupName", group}, {"logStreamName", stream}, {"startFromHead", true}};
    if (!token.empty()) req["nextToken"] = token;
    DROVER_ASSIGN_OR_RETURN(json::object page, c.Logs("GetLogEvents", req));
    if (const auto* events = GetArray(page, "events")) {
      for (const auto& e : *events) std::printf("%s\n", Str(e.as_object(), "message").c_str());
    }
    std::fflush(stdout);
    std::string next = Str(page, "nextForwardToken");
    if (next == token || next.empty()) return next;
    token = next;
  }
}

std::string LogGroup(const json::object& job) {
  if (const auto* c = GetObject(job, "container")) {
    if (const auto* lc = GetObject(*c, "logConfiguration")) {
      if (const auto* o = GetObject(*lc, "options")) {
        if (auto g = GetString(*o, "awslogs-group")) return std::string(*g);
      }
    }
  }
  return "/aws/batch/job";
}

std::string LogStream(const json::object& job) {
  const auto* c = GetObject(job, "container");
  return c ? Str(*c, "logStreamName") : "";
}

// Prints a job's output, every attempt's in order: what is there, or with
// `follow` as it comes until the job finishes. The attempts that ended are in
// the job's `attempts` (each names its stream), however quickly they went by;
// the running one is the container's stream.
int FollowLogs(Client& c, const std::string& id, bool follow) {
  std::string stream, token;       // the running attempt's stream, and how far it is printed
  std::set<std::string> finished;  // streams printed to their end
  for (;;) {
    auto job = DescribeJob(c, id);
    if (!job.ok()) return Fail(job.status());
    const std::string group = LogGroup(*job);
    if (const auto* attempts = GetArray(*job, "attempts")) {
      for (const auto& a : *attempts) {
        const auto* ac = GetObject(a.as_object(), "container");
        std::string s = ac ? Str(*ac, "logStreamName") : "";
        if (s.empty() || finished.count(s)) continue;
        auto rest = PrintLogs(c, group, s, s == stream ? token : "");
        if (!rest.ok()) return Fail(rest.status());
        finished.insert(s);
        if (s == stream) stream.clear();
      }
    }
    if (std::string s = LogStream(*job); !s.empty() && !finished.count(s) && s != stream) {
      stream = s;
      token.clear();
    }
    if (!stream.empty()) {
      auto next = PrintLogs(c, group, stream, token);
      if (!next.ok()) return Fail(next.status());
      token = *next;
    }
    if (!follow || Terminal(Str(*job, "status"))) return 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
}

json::object Ensure(Client& c, std::string_view describe_op, json::object describe_req,
                    std::string_view list_key, std::string_view create_op, json::object create_req,
                    bool* created) {
  auto d = c.Batch(describe_op, describe_req);
  if (d.ok()) {
    if (const auto* items = GetArray(*d, list_key); items && !items->empty()) {
      *created = false;
      return (*items)[0].as_object();
    }
  }
  auto r = c.Batch(create_op, create_req);
  *created = r.ok();
  if (!r.ok()) std::fprintf(stderr, "drover: %s\n", r.status().message().c_str());
  return r.ok() ? r.value() : json::object();
}

}  // namespace

std::string PrettyJson(const json::value& v, int indent) {
  std::string pad(indent + 2, ' '), end(indent, ' ');
  if (v.is_object()) {
    const auto& o = v.as_object();
    if (o.empty()) return "{}";
    std::string s = "{\n";
    size_t i = 0;
    for (const auto& kv : o) {
      s += pad + ToJson(json::value(kv.key())) + ": " + PrettyJson(kv.value(), indent + 2);
      s += ++i < o.size() ? ",\n" : "\n";
    }
    return s + end + "}";
  }
  if (v.is_array()) {
    const auto& a = v.as_array();
    if (a.empty()) return "[]";
    std::string s = "[\n";
    for (size_t i = 0; i < a.size(); ++i) {
      s += pad + PrettyJson(a[i], indent + 2) + (i + 1 < a.size() ? ",\n" : "\n");
    }
    return s + end + "]";
  }
  return ToJson(v);
}

Runner SetUpQuickstart(CLI::App& app) {
  auto c = std::make_shared<Common>();
  c->Add(app);
  return [c] {
    auto cl = Connect(*c);
    if (!cl) return 1;
    int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    bool created = false;
    json::object resources{{"type", "EC2"}, {"maxvCpus", cores}, {"subnets", json::array{"local"}}};
    Ensure(*cl, "DescribeComputeEnvironments", {{"computeEnvironments", json::array{"local"}}},
           "computeEnvironments", "CreateComputeEnvironment",
           {{"computeEnvironmentName", "local"}, {"type", "MANAGED"},
            {"computeResources", std::move(resources)}},
           &created);
    std::printf("%s compute environment 'local' (%d vCPU on this host)\n",
                created ? "created" : "using", cores);
    Ensure(*cl, "DescribeJobQueues", {{"jobQueues", json::array{"default"}}}, "jobQueues",
           "CreateJobQueue",
           {{"jobQueueName", "default"},
            {"priority", 1},
            {"computeEnvironmentOrder",
             json::array{json::object{{"order", 1}, {"computeEnvironment", "local"}}}}},
           &created);
    std::printf("%s job queue 'default'\n", created ? "created" : "using");
    json::object hello{
        {"command", json::array{"sh", "-c",
                                "echo \"Hello from Drover! I am job $AWS_BATCH_JOB_ID, attempt "
                                "$AWS_BATCH_JOB_ATTEMPT, on queue $AWS_BATCH_JQ_NAME.\""}},
        {"resourceRequirements", json::array{json::object{{"type", "VCPU"}, {"value", "1"}},
                                             json::object{{"type", "MEMORY"}, {"value", "64"}}}}};
    Ensure(*cl, "DescribeJobDefinitions",
           {{"jobDefinitionName", "hello-world"}, {"status", "ACTIVE"}}, "jobDefinitions",
           "RegisterJobDefinition",
           {{"jobDefinitionName", "hello-world"}, {"type", "container"}, {"containerProperties", hello}},
           &created);
    std::printf("%s job definition 'hello-world'\n", created ? "registered" : "using");
    auto sub = cl->Batch("SubmitJob", {{"jobName", "hello-world"},
                                       {"jobQueue", "default"},
                                       {"jobDefinition", "hello-world"}});
    if (!sub.ok()) return Fail(sub.status());
    std::string id = Str(*sub, "jobId");
    std::printf("submitted job %s\n", id.c_str());
    std::string last;
    int64_t deadline = TheClock().NowMillis() + 60000;
    for (;;) {
      auto job = DescribeJob(*cl, id);
      if (!job.ok()) return Fail(job.status());
      std::string s = Str(*job, "status");
      if (s != last) std::printf("  %s\n", s.c_str());
      last = s;
      if (Terminal(s)) {
        std::printf("output (aws logs get-log-events --log-group-name /aws/batch/job "
                    "--log-stream-name %s):\n", LogStream(*job).c_str());
        FollowLogs(*cl, id, false);
        return s == "SUCCEEDED" ? 0 : 1;
      }
      if (TheClock().NowMillis() > deadline) {
        std::printf("still %s after 60 s: %s\n", s.c_str(), Str(*job, "statusReason").c_str());
        return 1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  };
}

Runner SetUpSubmit(CLI::App& app) {
  auto c = std::make_shared<Common>();
  c->Add(app);
  struct Opts {
    std::string queue, definition, name;
    int array = 0;
    std::vector<std::string> depends, env, command;
    double vcpus = 0;
    int64_t memory = 0;
  };
  auto o = std::make_shared<Opts>();
  app.add_option("--queue,-q", o->queue, "job queue (name or ARN)")->required();
  app.add_option("--definition,-d", o->definition,
                 "job definition (default: a reusable 'drover-command' definition)");
  app.add_option("--name,-n", o->name, "job name (default: from the command)");
  app.add_option("--array", o->array, "array job of N children");
  app.add_option("--depends-on", o->depends, "job ID this job waits for (repeatable)")
      ->allow_extra_args(false);
  app.add_option("--env,-e", o->env, "NAME=VALUE for the job's environment (repeatable)")
      ->allow_extra_args(false);
  app.add_option("--vcpus", o->vcpus, "vCPUs to reserve");
  app.add_option("--memory", o->memory, "memory to reserve, in MiB");
  app.add_option("command", o->command, "the command and its arguments (after --)");
  return [c, o] {
    auto cl = Connect(*c);
    if (!cl) return 1;
    std::string def = o->definition;
    if (def.empty()) {
      if (o->command.empty()) return Fail(Status::Client("give a command (after --) or --definition"));
      def = "drover-command";
      auto d = cl->Batch("DescribeJobDefinitions", {{"jobDefinitionName", def}, {"status", "ACTIVE"}});
      if (!d.ok() || GetArray(*d, "jobDefinitions")->empty()) {
        json::array rr{json::object{{"type", "VCPU"}, {"value", "1"}},
                       json::object{{"type", "MEMORY"}, {"value", "256"}}};
        json::object props{{"resourceRequirements", std::move(rr)}};
        auto r = cl->Batch("RegisterJobDefinition", {{"jobDefinitionName", def},
                                                     {"type", "container"},
                                                     {"containerProperties", std::move(props)}});
        if (!r.ok()) return Fail(r.status());
      }
    }
    std::string name = o->name;
    if (name.empty()) {
      std::string base = o->command.empty() ? def : o->command[0];
      base = base.substr(base.rfind('/') + 1);
      for (char ch : base) {
        if (std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_') name += ch;
      }
      if (name.empty() || !std::isalnum(static_cast<unsigned char>(name[0]))) name = "job" + name;
      name = name.substr(0, 128);
    }
    json::object req{{"jobName", name}, {"jobQueue", o->queue}, {"jobDefinition", def}};
    json::object overrides;
    if (!o->command.empty()) {
      json::array cmd;
      for (const auto& a : o->command) cmd.emplace_back(a);
      overrides["command"] = std::move(cmd);
    }
    json::array rr;
    if (o->vcpus > 0) {
      char v[32];
      std::snprintf(v, sizeof v, "%g", o->vcpus);
      rr.push_back(json::object{{"type", "VCPU"}, {"value", v}});
    }
    if (o->memory > 0) {
      rr.push_back(json::object{{"type", "MEMORY"}, {"value", std::to_string(o->memory)}});
    }
    if (!rr.empty()) overrides["resourceRequirements"] = std::move(rr);
    if (!o->env.empty()) {
      json::array env;
      for (const auto& e : o->env) {
        size_t eq = e.find('=');
        if (eq == std::string::npos) return Fail(Status::Client("--env wants NAME=VALUE, got " + e));
        env.push_back(json::object{{"name", e.substr(0, eq)}, {"value", e.substr(eq + 1)}});
      }
      overrides["environment"] = std::move(env);
    }
    if (!overrides.empty()) req["containerOverrides"] = std::move(overrides);
    if (o->array > 0) req["arrayProperties"] = json::object{{"size", o->array}};
    if (!o->depends.empty()) {
      json::array deps;
      for (const auto& d : o->depends) deps.push_back(json::object{{"jobId", d}});
      req["dependsOn"] = std::move(deps);
    }
    auto r = cl->Batch("SubmitJob", req);
    if (!r.ok()) return Fail(r.status());
    if (c->json) std::printf("%s\n", PrettyJson(*r).c_str());
    else std::printf("%s\n", Str(*r, "jobId").c_str());
    return 0;
  };
}

Runner SetUpJobs(CLI::App& app) {
  auto c = std::make_shared<Common>();
  c->Add(app);
  struct Opts {
    std::string queue, status;
    bool watch = false;
  };
  auto o = std::make_shared<Opts>();
  app.add_option("--queue,-q", o->queue, "only this job queue");
  app.add_option("--status,-s", o->status, "only jobs in this state");
  app.add_flag("--watch,-w", o->watch, "refresh every second until interrupted");
  return [c, o] {
    auto cl = Connect(*c);
    if (!cl) return 1;
    for (;;) {
      std::vector<std::string> queues;
      if (!o->queue.empty()) {
        queues.push_back(o->queue);
      } else {
        auto qs = All(*cl, "DescribeJobQueues", {}, "jobQueues");
        if (!qs.ok()) return Fail(qs.status());
        for (const auto& q : *qs) queues.push_back(Str(q.as_object(), "jobQueueName"));
      }
      json::array jobs;
      for (const auto& q : queues) {
        json::object req{{"jobQueue", q}};
        if (!o->status.empty()) req["jobStatus"] = o->status;
        else req["filters"] = json::array{json::object{{"name", "JOB_NAME"}, {"values", json::array{"*"}}}};
        auto page = All(*cl, "ListJobs", req, "jobSummaryList");
        if (!page.ok()) return Fail(page.status());
        for (auto& j : *page) {
          j.as_object()["jobQueue"] = q;
          jobs.push_back(j);
        }
      }
      if (c->json) {
        std::printf("%s\n", PrettyJson(jobs).c_str());
        return 0;
      }
      if (o->watch) std::printf("\x1b[H\x1b[2J");
      std::map<std::string, int> counts;
      std::vector<std::vector<std::string>> rows;
      for (const auto& j : jobs) {
        const auto& jo = j.as_object();
        std::string status = Str(jo, "status");
        ++counts[status];
        std::string reason = Str(jo, "statusReason");
        if (reason.size() > 60) reason = reason.substr(0, 57) + "...";
        rows.push_back({Str(jo, "jobId"), Str(jo, "jobName"), Str(jo, "jobQueue"), status,
                        Age(GetInt(jo, "createdAt").value_or(0)), reason});
      }
      PrintTable({"JOB ID", "NAME", "QUEUE", "STATUS", "AGE", "REASON"}, rows);
      std::string summary;
      size_t done = counts["SUCCEEDED"] + counts["FAILED"];
      for (const char* s : kStates) summary += std::string(s) + " " + std::to_string(counts[s]) + "  ";
      std::printf("\n%s\n", summary.c_str());
      if (!jobs.empty()) {
        int width = 40, filled = static_cast<int>(width * done / jobs.size());
        std::printf("[%s%s] %zu/%zu finished\n", std::string(filled, '#').c_str(),
                    std::string(width - filled, '.').c_str(), done, jobs.size());
      }
      if (!o->watch) return 0;
      std::fflush(stdout);
      std::this_thread::sleep_for(std::chrono::seconds(1));
    }
  };
}

Runner SetUpDescribe(CLI::App& app) {
  auto c = std::make_shared<Common>();
  c->Add(app);
  auto id = std::make_shared<std::string>();
  app.add_option("job", *id, "job ID")->required();
  return [c, id] {
    auto cl = Connect(*c);
    if (!cl) return 1;
    auto job = DescribeJob(*cl, *id);
    if (!job.ok()) return Fail(job.status());
    if (c->json) {
      std::printf("%s\n", PrettyJson(*job).c_str());
      return 0;
    }
    const json::object& j = *job;
    const json::object* ct = GetObject(j, "container");
    auto row = [](const char* k, const std::string& v) {
      if (!v.empty()) std::printf("%-14s %s\n", k, v.c_str());
    };
    row("job", Str(j, "jobId") + " (" + Str(j, "jobName") + ")");
    row("status", Str(j, "status"));
    row("reason", Str(j, "statusReason"));
    row("queue", Str(j, "jobQueue"));
    row("definition", Str(j, "jobDefinition"));
    row("created", Age(GetInt(j, "createdAt").value_or(0)) + " ago");
    if (ct) {
      std::string cmd;
      if (const auto* a = GetArray(*ct, "command")) {
        for (const auto& x : *a) cmd += (cmd.empty() ? "" : " ") + std::string(x.as_string());
      }
      row("command", cmd);
      if (auto e = GetInt(*ct, "exitCode")) row("exit code", std::to_string(*e));
      row("log stream", Str(*ct, "logStreamName"));
    }
    if (const auto* a = GetArray(j, "attempts")) {
      row("attempts", std::to_string(a->size()));
      if (!a->empty()) {
        if (const auto* u = GetObject(a->back().as_object(), "resourceUsage")) {
          char buf[128];
          auto num = [&](const char* k) {
            auto it = u->find(k);
            return it == u->end() ? -1.0 : it->value().to_number<double>();
          };
          std::snprintf(buf, sizeof buf, "peak memory %.1f MiB, CPU time %.2f s",
                        num("peakMemoryMiB"), num("cpuSeconds"));
          row("last attempt", buf);
        }
      }
    }
    return 0;
  };
}

Runner SetUpLogs(CLI::App& app) {
  auto c = std::make_shared<Common>();
  c->Add(app);
  auto id = std::make_shared<std::string>();
  auto follow = std::make_shared<bool>(false);
  app.add_option("job", *id, "job ID")->required();
  app.add_flag("--follow,-f", *follow, "keep printing until the job finishes");
  return [c, id, follow] {
    auto cl = Connect(*c);
    if (!cl) return 1;
    return FollowLogs(*cl, *id, *follow);
  };
}

Runner SetUpCancel(CLI::App& app) {
  auto c = std::make_shared<Common>();
  c->Add(app);
  struct Opts {
    std::vector<std::string> ids;
    std::string queue, status, reason = "Cancelled with drover cancel";
  };
  auto o = std::make_shared<Opts>();
  app.add_option("jobs", o->ids, "job IDs");
  app.add_option("--queue,-q", o->queue, "cancel every unfinished job of this queue");
  app.add_option("--status,-s", o->status, "with --queue: only jobs in this state");
  app.add_option("--reason", o->reason, "the reason recorded on the jobs")->capture_default_str();
  return [c, o] {
    auto cl = Connect(*c);
    if (!cl) return 1;
    std::vector<std::string> ids = o->ids;
    if (!o->queue.empty()) {
      std::vector<std::string> states;
      if (!o->status.empty()) states = {o->status};
      else states = {"SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING"};
      for (const auto& s : states) {
        auto page = All(*cl, "ListJobs", {{"jobQueue", o->queue}, {"jobStatus", s}}, "jobSummaryList");
        if (!page.ok()) return Fail(page.status());
        for (const auto& j : *page) ids.push_back(Str(j.as_object(), "jobId"));
      }
    }
    if (ids.empty()) return Fail(Status::Client("name the jobs, or --queue"));
    int failures = 0;
    for (const auto& id : ids) {
      auto job = DescribeJob(*cl, id);
      if (!job.ok()) {
        std::fprintf(stderr, "drover: %s\n", job.status().message().c_str());
        ++failures;
        continue;
      }
      std::string s = Str(*job, "status");
      if (Terminal(s)) {
        std::printf("%s already %s\n", id.c_str(), s.c_str());
        continue;
      }
      bool started = s == "STARTING" || s == "RUNNING";
      auto r = cl->Batch(started ? "TerminateJob" : "CancelJob", {{"jobId", id}, {"reason", o->reason}});
      if (!r.ok()) {
        std::fprintf(stderr, "drover: %s\n", r.status().message().c_str());
        ++failures;
        continue;
      }
      std::printf("%s %s\n", id.c_str(), started ? "terminating" : "cancelled");
    }
    return failures ? 1 : 0;
  };
}

Runner SetUpQueues(CLI::App& app) {
  auto c = std::make_shared<Common>();
  c->Add(app);
  return [c] {
    auto cl = Connect(*c);
    if (!cl) return 1;
    auto qs = All(*cl, "DescribeJobQueues", {}, "jobQueues");
    if (!qs.ok()) return Fail(qs.status());
    if (c->json) {
      std::printf("%s\n", PrettyJson(*qs).c_str());
      return 0;
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& q : *qs) {
      const auto& qo = q.as_object();
      std::string ces;
      if (const auto* order = GetArray(qo, "computeEnvironmentOrder")) {
        for (const auto& e : *order) {
          std::string arn = Str(e.as_object(), "computeEnvironment");
          ces += (ces.empty() ? "" : ",") + arn.substr(arn.rfind('/') + 1);
        }
      }
      rows.push_back({Str(qo, "jobQueueName"), Str(qo, "state"), Str(qo, "status"),
                      std::to_string(GetInt(qo, "priority").value_or(0)), ces});
    }
    PrintTable({"NAME", "STATE", "STATUS", "PRIORITY", "COMPUTE ENVIRONMENTS"}, rows);
    return 0;
  };
}

Runner SetUpEnvs(CLI::App& app) {
  auto c = std::make_shared<Common>();
  c->Add(app);
  return [c] {
    auto cl = Connect(*c);
    if (!cl) return 1;
    auto ces = All(*cl, "DescribeComputeEnvironments", {}, "computeEnvironments");
    if (!ces.ok()) return Fail(ces.status());
    if (c->json) {
      std::printf("%s\n", PrettyJson(*ces).c_str());
      return 0;
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& e : *ces) {
      const auto& eo = e.as_object();
      std::string max = "-";
      if (const auto* cr = GetObject(eo, "computeResources")) {
        max = std::to_string(GetInt(*cr, "maxvCpus").value_or(0));
      }
      rows.push_back({Str(eo, "computeEnvironmentName"), Str(eo, "type"), Str(eo, "state"),
                      Str(eo, "status"), max});
    }
    PrintTable({"NAME", "TYPE", "STATE", "STATUS", "MAX VCPUS"}, rows);
    return 0;
  };
}

Runner SetUpImage(CLI::App& app) {
  struct Opts {
    std::string data = "./drover-data", ref, source, which;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  app.require_subcommand(1);
  app.fallthrough();  // --data may come after the subcommand
  app.add_option("--data", o->data, "the server's data dir (its images/ folder)")
      ->capture_default_str();
  CLI::App* imp = app.add_subcommand("import", "import a root filesystem (tar, tar.gz, dir, or "
                                               "OCI image layout) as NAME:TAG");
  imp->add_option("image", o->ref, "NAME[:TAG]")->required();
  imp->add_option("file", o->source, "the tarball, directory or OCI layout")->required();
  imp->callback([o] { o->which = "import"; });
  CLI::App* ls = app.add_subcommand("ls", "list the images in the store");
  ls->add_flag("--json", o->json, "print JSON for scripts");
  ls->callback([o] { o->which = "ls"; });
  CLI::App* rm = app.add_subcommand("rm", "remove an image");
  rm->add_option("image", o->ref, "NAME[:TAG]")->required();
  rm->callback([o] { o->which = "rm"; });
  return [o] {
    images::ImageStore store(o->data + "/images");
    if (o->which == "ls") {
      auto list = store.List();
      if (!list.ok()) return Fail(list.status());
      if (o->json) {
        json::array a;
        for (const auto& i : *list) {
          a.push_back(json::object{{"image", i.ref.ToString()}, {"sizeBytes", i.size_bytes},
                                   {"importedAt", i.imported_at_ms}});
        }
        std::printf("%s\n", PrettyJson(a).c_str());
        return 0;
      }
      std::vector<std::vector<std::string>> rows;
      for (const auto& i : *list) {
        char size[32];
        std::snprintf(size, sizeof size, "%.1f MiB", static_cast<double>(i.size_bytes) / (1 << 20));
        rows.push_back({i.ref.ToString(), size, Age(i.imported_at_ms)});
      }
      PrintTable({"IMAGE", "SIZE", "IMPORTED"}, rows);
      return 0;
    }
    auto ref = images::ParseRef(o->ref);
    if (!ref.ok()) return Fail(ref.status());
    Status s = o->which == "import" ? store.Import(*ref, o->source) : store.Remove(*ref);
    if (!s.ok()) return Fail(s);
    std::printf("%s %s\n", o->which == "import" ? "imported" : "removed", ref->ToString().c_str());
    return 0;
  };
}

}  // namespace drover::cli
