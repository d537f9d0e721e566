#include "common/status.h"

namespace drover {

std::string Status::ToString() const {
  switch (code_) {
    case Code::kOk: return "OK";
    case Code::kClient: return "client error: " + message_;
    case Code::kNotFound: return "not found: " + message_;
    case Code::kServer: return "server error: " + message_;
    case Code::kThrottled: return "throttled: " + message_;
    case Code::kAlreadyExists: return "already exists: " + message_;
  }
  return message_;
}

}  // namespace drover
