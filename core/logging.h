#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <string>

#include "core/status.h"

namespace micro {

enum class LogFormat { kText, kJson };

// Parses "text" or "json".
[[nodiscard]] Result<LogFormat> ParseLogFormat(const std::string& name);

// Parses trace, debug, info, warn, error, critical or off.
[[nodiscard]] Result<spdlog::level::level_enum> ParseLogLevel(const std::string& name);

// Makes the process-wide default logger write to stderr at `level` in `format`. In JSON format
// every line is one object {"time","level","logger","msg"} with the message escaped.
void SetUpLogging(spdlog::level::level_enum level, LogFormat format);

}  // namespace micro
