#pragma once

// What the operation log's files share about RocksDB: conversions between its types and
// segd's.
//
// Thread safety: constants and pure functions.

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "rocksdb/slice.h"
#include "rocksdb/status.h"
#include "storage/detail/families.h"
#include "storage/oplog_format.h"

namespace segd::storage::detail {

// The one place where a rocksdb::Status becomes an absl::Status: by its kind, never by words
// in its text (a path may hold any word). `context` prefixes the message.
absl::Status FromRocks(const rocksdb::Status& s, absl::string_view context);

inline absl::string_view View(const rocksdb::Slice& slice) {
  return absl::string_view(slice.data(), slice.size());
}

inline rocksdb::Slice AsSlice(absl::string_view bytes) {
  return rocksdb::Slice(bytes.data(), bytes.size());
}

inline rocksdb::Slice AsSlice(const IdTimeSeqKeyBytes& key) {
  return rocksdb::Slice(key.bytes, sizeof(key.bytes));
}

}  // namespace segd::storage::detail
