#pragma once

// The engine's error vocabulary. Every error is an absl::Status; the API error code it maps to
// (`segment_not_found`, `conflict_in_request`, …) travels as a payload so that the server needs
// no string matching. Structured details (which segments, which byte) travel as payloads too.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace segd::engine {

// Payload type URLs.
inline constexpr absl::string_view kErrorCodePayload = "segd/code";
inline constexpr absl::string_view kSegmentsPayload = "segd/segments";  // names joined by '\n'
inline constexpr absl::string_view kPositionPayload = "segd/position";  // decimal byte offset
inline constexpr absl::string_view kUserIdPayload = "segd/user_id";     // a user's own id

absl::Status BadRequest(absl::string_view message);
// How a client's input is quoted in an error message: 'X', or a placeholder when it looks like
// a path (a "..", a slash or backslash, a control character): a message must not echo what
// could be taken for a path on the server, nor carry control bytes into logs.
std::string Quote(absl::string_view input);

absl::Status SegmentNotFound(std::vector<std::string> names);
absl::Status UserNotFound(absl::string_view external_id);
absl::Status SegmentExists(absl::string_view name);
absl::Status ConflictInRequest(absl::string_view message);
absl::Status SyntaxError(absl::string_view message, size_t position);
absl::Status LimitExceeded(absl::string_view message);
// A rule segment's members are computed: they cannot be added, removed or imported by hand.
absl::Status SegmentIsComputed(absl::string_view name);
// A rule that would read itself through in_segment.
absl::Status RuleCycle(absl::string_view message);
// A change-feed cursor whose records the history retention has dropped (or is about to).
absl::Status CursorExpired(absl::string_view message);
// A point-in-time question about an instant older than the retained history.
absl::Status BeforeRetention(absl::string_view message);
// An alias that is another user's id or alias (`owner`, by its own id).
absl::Status AliasTaken(absl::string_view alias, absl::string_view owner);
// A change refused because of the state it would lead to (409 conflict).
absl::Status Conflict(absl::string_view message);
// The user id attached by AliasTaken.
std::optional<std::string> UserIdOf(const absl::Status& status);

// The API error code of `status` ("bad_request", "segment_not_found", …), derived from the
// payload when present and from the canonical code otherwise.
std::string ErrorCodeOf(const absl::Status& status);
// The segment names attached by SegmentNotFound, empty when none.
std::vector<std::string> SegmentsOf(const absl::Status& status);
// The byte offset attached by SyntaxError.
std::optional<size_t> PositionOf(const absl::Status& status);

}  // namespace segd::engine
