#pragma once

// Identifiers and times shared by every part of the engine.

#include <cstddef>
#include <cstdint>
#include <limits>

namespace segd::engine {

// Dense internal user id, assigned in the order users are first seen and never reused.
using UserId = uint32_t;
// Dense internal segment id, assigned when a name is first created and never reused.
using SegmentId = uint32_t;
// Milliseconds since the Unix epoch, UTC.
using TimeMs = int64_t;

// Expiry value meaning "this membership does not expire".
inline constexpr TimeMs kNoExpiry = 0;
// A time segd does not know (an added_at recovered from a snapshot that did not keep it).
inline constexpr TimeMs kUnknownTime = std::numeric_limits<TimeMs>::min();

// Segment ids live in 31 bits (the top bit is a flag in the per-user index).
inline constexpr SegmentId kMaxSegmentId = (1u << 31) - 1;
inline constexpr UserId kMaxUserId = std::numeric_limits<UserId>::max() - 1;

}  // namespace segd::engine
