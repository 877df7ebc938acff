#include "storage/detail/rocks_util.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace segd::storage::detail {

absl::Status FromRocks(const rocksdb::Status& s, absl::string_view context) {
  if (s.ok()) return absl::OkStatus();
  std::string message = absl::StrCat(context, ": ", s.ToString());
  if (s.IsCorruption()) return absl::DataLossError(message);
  // Another segd holding the directory is found before RocksDB is opened (DataDir::Lock).
  if (s.IsIOError()) {
    if (s.IsNoSpace()) return absl::ResourceExhaustedError(message);
    return absl::UnavailableError(message);
  }
  return absl::InternalError(message);
}

}  // namespace segd::storage::detail
