// Helpers shared by log_store.cc and logs_service.cc; not part of the
// module's interface.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "logs/logs.h"

namespace drover::logs::internal {

bool IsValidUtf8(std::string_view s);
// (Replacing invalid sequences by U+FFFD: ValidUtf8 in common/json.h.)
// The largest n <= max (and <= s.size()) such that s[0, n) does not end inside
// a well-formed multi-byte character.
size_t Utf8Cut(std::string_view s, size_t max);

// Parses one line (without its '\n'): "<ts>\t<ingestion>\t<message>".
bool ParseLine(std::string_view line, LogEvent& ev);
void AppendLine(std::string& out, int64_t ts, int64_t ingestion, std::string_view message);

// The last well-formed complete event of an open file of `size` bytes.
Result<std::optional<LogEvent>> ReadLastEvent(int fd, int64_t size, const std::string& path);

}  // namespace drover::logs::internal
