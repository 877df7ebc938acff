#pragma once

// BlockReader: membership records by sequence number, read from the `ops` family through one
// iterator, keeping the last block decoded, so that consecutive lookups (a replay, a period's
// report) decode each block once.
//
// Thread safety: confined to one thread at a time, like the iterator it reads through.

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "engine/engine.h"
#include "rocksdb/iterator.h"

namespace segd::storage::detail {

class BlockReader {
 public:
  // `it` iterates `ops`; not owned, and must outlive the reader.
  explicit BlockReader(rocksdb::Iterator* it) : it_(it) {}

  // Points *records at the n records from `seq` on. NotFound if no block holds all of them
  // (retention removed it, or the log has no such records). The pointer stays valid until the
  // next call that moves to another block.
  absl::Status Get(uint64_t seq, uint32_t n, const engine::OpRecord** records);

  // Moves to the block holding the first record at or after `seq`: first(), records().
  // NotFound past the end of the log.
  absl::Status LoadAtOrAfter(uint64_t seq);
  // Moves to the block after the current one; NotFound at the end of the log.
  absl::Status Next();

  // The sequence number of records()[0].
  uint64_t first() const { return first_; }
  const std::vector<engine::OpRecord>& records() const { return records_; }

 private:
  // The block whose first record is the greatest at or before `seq`.
  absl::Status Load(uint64_t seq);
  absl::Status Decode();

  rocksdb::Iterator* it_;
  uint64_t first_ = 0;
  std::vector<engine::OpRecord> records_;
};

}  // namespace segd::storage::detail
