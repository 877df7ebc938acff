#include "engine/stable_hash.h"

namespace segd::engine {

uint64_t StableHash64(absl::string_view bytes, uint64_t seed) {
  uint64_t h = 0xcbf29ce484222325ULL ^ seed;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  h += 0x9e3779b97f4a7c15ULL;
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
  return h ^ (h >> 31);
}

bool StickyPercentDecision(absl::string_view segment, absl::string_view external_id,
                           double percent) {
  if (percent <= 0) return false;
  if (percent >= 100) return true;
  // Hash the segment first, then chain the user id through the seed: no separator ambiguity.
  uint64_t h = StableHash64(external_id, StableHash64(segment));
  // Top 53 bits as a double in [0, 1).
  double unit = static_cast<double>(h >> 11) * (1.0 / 9007199254740992.0);
  return unit * 100.0 < percent;
}

}  // namespace segd::engine
