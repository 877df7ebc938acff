#pragma once

// When a mutation counts as durable (OpLogOptions::durability; oplog.h says what each mode
// promises). Apart from oplog.h so that the server's flags can name it without the log.
//
// Thread safety: pure functions.

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace segd::storage {

enum class Durability { kProcess, kFsync };

// "process" or "fsync".
inline absl::StatusOr<Durability> ParseDurability(absl::string_view text) {
  if (text == "process") return Durability::kProcess;
  if (text == "fsync") return Durability::kFsync;
  return absl::InvalidArgumentError(
      absl::StrCat("durability must be 'process' or 'fsync', got '", text, "'"));
}

}  // namespace segd::storage
