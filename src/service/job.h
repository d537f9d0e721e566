// BatchService's index entry for a job: what scheduling needs, kept beside the
// job's AWS-shaped document. Private to the service module.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "sched/schedule.h"
#include "service/batch_service.h"

namespace drover::service {

inline bool IsTerminal(std::string_view status) {
  return status == "SUCCEEDED" || status == "FAILED";
}

struct BatchService::Job {
  std::string id, arn;
  std::string queue;   // ARN
  std::string status;  // mirrors doc["status"]
  sched::Resources need;
  int64_t seq = 0;
  std::vector<std::string> depends_on;  // job ids
  int64_t timeout_ms = 0;               // per attempt; 0: none
  int max_attempts = 1;
  size_t attempts = 0;                  // finished attempts
  // The current attempt (STARTING / RUNNING):
  std::string ce;       // compute environment ARN it holds capacity in
  std::string task_id;
  int64_t started_at = 0;
  bool start_pending = false;  // placed, not yet handed to the executor
  std::string terminate_reason;
};

}  // namespace drover::service
