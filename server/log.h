#pragma once

// Minimal leveled logging to stderr, one line per call, prefixed with the time and level.
//
// Thread safety: every function may be called from any thread (each line is one write).

#include "server/config.h"

namespace segd::server {

// Lines below `level` are dropped. Call once at start-up, before other threads log.
void SetLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);
void Log(LogLevel level, const char* format, ...) __attribute__((format(printf, 2, 3)));

}  // namespace segd::server
