#pragma once

// The change feed: the log's membership records read back as changes, in log order, from a
// cursor (docs/changes.md).
//
// A change is one user's entries and exits that one logged mutation made for one reason: a
// maximal run of consecutive records of one ops block with the same user, reason and time.
// (A write batch is one or more blocks; a mutation's records for one user and reason are
// consecutive, and rule changes an event causes follow with reason `rule`, a change of their
// own.) An add that refreshes a membership (OpRecord::refresh) is neither an entry nor an exit;
// a change left with neither is skipped, as is one whose segments a filter drops.
//
// Cursors are sequence numbers: a change's cursor is the seq of its last record, and reading
// "after" a cursor starts at the next seq. Records are read from the ChangeTail while it holds
// them and from the log's `ops` family before that, up to what the tail has published.
//
// Thread safety: ReadChanges may run on any thread, concurrently with writes.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/op_record.h"
#include "storage/oplog.h"

namespace segd::storage {

struct Change {
  uint64_t cursor = 0;  // the seq of its last record
  engine::TimeMs at = 0;
  engine::UserId user = 0;
  engine::OpReason reason = engine::OpReason::kApi;
  absl::InlinedVector<engine::SegmentId, 2> entered;
  absl::InlinedVector<engine::SegmentId, 2> exited;
};

struct ChangeQuery {
  // Read the changes after this cursor; nullopt: from the oldest retained record.
  std::optional<uint64_t> after;
  std::vector<engine::SegmentId> segments;  // sorted; empty: every segment
  size_t limit = 1000;                      // changes returned at most (≥ 1)
};

struct ChangePage {
  std::vector<Change> changes;
  // Where the next read resumes: the last change's cursor when the page is full, otherwise
  // the last record examined (the end of what is published).
  uint64_t next = 0;
};

// Reads the changes of `query` published so far. Errors: cursor_expired (the records after
// the cursor have left the retained history: their ops block is gone, or its newest record is
// older than the retention), bad_request for a cursor past the end of the log, DataLoss or
// Unavailable from the log.
absl::StatusOr<ChangePage> ReadChanges(const OpLog& log, const ChangeQuery& query);

// The text form of a cursor: 16 lower-case hex digits, so that text order is log order.
std::string FormatCursor(uint64_t cursor);
// FormatCursor's text appended to *out (the feed's JSON writer, without a temporary).
void AppendCursor(std::string* out, uint64_t cursor);
// Reads FormatCursor's text, or "0" (from the oldest retained: nullopt in *after).
// bad_request for anything else.
absl::Status ParseCursor(absl::string_view text, std::optional<uint64_t>* after);

}  // namespace segd::storage
