#pragma once

// A hash that never changes across builds, platforms or releases, for decisions that must stay
// the same forever (sticky percentage rollouts). absl::Hash is salted per process: never use it
// for anything persisted or user-visible.

#include <cstdint>

#include "absl/strings/string_view.h"

namespace segd::engine {

// 64-bit FNV-1a over the bytes, finished with the SplitMix64 mixer so that nearby inputs spread
// over the whole range. Frozen: changing it would move users between rollout buckets.
uint64_t StableHash64(absl::string_view bytes, uint64_t seed = 0);

// True when a user falls below `percent` (0–100) of a sticky rollout of `segment`. Decided by
// StableHash64 over (segment name, external user id) mapped uniformly to [0, 100).
bool StickyPercentDecision(absl::string_view segment, absl::string_view external_id,
                           double percent);

}  // namespace segd::engine
