#pragma once

// ChangeJson: a change of the feed (storage/change_feed.h) as the JSON object the API sends:
// {"cursor":"…","at":"…","user_id":"…","entered":[…],"exited":[…],"reason":"…"}. Used by the
// feed's pages and streams and by webhooks' batches.
//
// Written straight into the output rather than through JsonWriter: catching up from the log
// spends most of its time here (keys are constants, segment names never need escaping, user
// ids rarely do, and neighbouring changes share their second).
//
// Thread safety: one thread at a time (it keeps the names and the second it has formatted).

#include <string>

#include "absl/container/flat_hash_map.h"
#include "base/time_text.h"
#include "engine/engine.h"
#include "storage/change_feed.h"

namespace segd::server::detail {

class ChangeJson {
 public:
  // `engine` must know every user and segment the changes name (it does for published ones).
  explicit ChangeJson(const engine::Engine& engine) : engine_(engine) {}

  void Append(std::string* out, const storage::Change& change);

 private:
  // The segment's name in quotes.
  const std::string& QuotedName(engine::SegmentId id);

  const engine::Engine& engine_;
  absl::flat_hash_map<engine::SegmentId, std::string> names_;
  Rfc3339Writer at_text_;
  engine::TimeMs last_at_ = -1;  // changes of one batch share their millisecond
  std::string last_at_text_;
};

}  // namespace segd::server::detail
