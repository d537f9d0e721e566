// Logging: spdlog to stderr in a readable form. Every module logs through
// these helpers so the format and level are set in one place.
//
// Thread-safety: spdlog's default logger is thread-safe.
#pragma once

#include <spdlog/spdlog.h>

#include <string_view>

#include "common/status.h"

namespace drover {

// Sets up the process-wide stderr logger; `level` is trace|debug|info|warn|error|off.
Status InitLogging(std::string_view level);

}  // namespace drover

#define LOG_DEBUG(...) ::spdlog::debug(__VA_ARGS__)
#define LOG_INFO(...) ::spdlog::info(__VA_ARGS__)
#define LOG_WARN(...) ::spdlog::warn(__VA_ARGS__)
#define LOG_ERROR(...) ::spdlog::error(__VA_ARGS__)
