#include "server/log.h"

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <string>

#include "base/time_text.h"
#include "engine/engine.h"

namespace segd::server {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kError:
      return "ERROR";
    case LogLevel::kWarn:
      return "WARN";
    case LogLevel::kInfo:
      return "INFO";
    case LogLevel::kDebug:
      return "DEBUG";
  }
  return "?";
}

}  // namespace

void SetLogLevel(LogLevel level) { g_level.store(static_cast<int>(level)); }

bool LogEnabled(LogLevel level) {
  return static_cast<int>(level) <= g_level.load(std::memory_order_relaxed);
}

void Log(LogLevel level, const char* format, ...) {
  if (!LogEnabled(level)) return;
  std::string line;
  AppendRfc3339Millis(&line, engine::SystemClock::Default()->NowMs());
  line.push_back(' ');
  line.append(LevelName(level));
  line.push_back(' ');
  char buf[1024];
  va_list args;
  va_start(args, format);
  int n = std::vsnprintf(buf, sizeof buf, format, args);
  va_end(args);
  if (n > 0) line.append(buf, std::min<size_t>(static_cast<size_t>(n), sizeof buf - 1));
  line.push_back('\n');
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace segd::server
