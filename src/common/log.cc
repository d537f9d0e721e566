#include "common/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

namespace drover {

Status InitLogging(std::string_view level) {
  auto lvl = spdlog::level::from_str(std::string(level));
  if (lvl == spdlog::level::off && level != "off") {
    return Status::Client("unknown log level '" + std::string(level) +
                          "' (use trace, debug, info, warn, error or off)");
  }
  auto logger = spdlog::stderr_color_mt("drover");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%-5l%$ %v");
  spdlog::set_level(lvl);
  return Status::Ok();
}

}  // namespace drover
