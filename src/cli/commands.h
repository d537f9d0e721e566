// The client subcommands of `drover` (quickstart, submit, jobs, describe,
// logs, cancel, queues, envs): each declares its flags on a CLI11 app and
// returns what runs it. They talk to a server through client::Client.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>

#include "common/json.h"

namespace drover::cli {

using Runner = std::function<int()>;

Runner SetUpQuickstart(CLI::App& app);
Runner SetUpSubmit(CLI::App& app);
Runner SetUpJobs(CLI::App& app);
Runner SetUpDescribe(CLI::App& app);
Runner SetUpLogs(CLI::App& app);
Runner SetUpCancel(CLI::App& app);
Runner SetUpQueues(CLI::App& app);
Runner SetUpEnvs(CLI::App& app);
Runner SetUpImage(CLI::App& app);

// Indented JSON for people.
std::string PrettyJson(const boost::json::value& v, int indent = 0);

}  // namespace drover::cli
