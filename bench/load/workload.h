#pragma once

// The requests segd-load sends: a deterministic dataset (users, segments with Zipf sizes) and,
// per workload, a generator of HTTP/1.1 request bytes.
//
// Thread safety: a Dataset is immutable once built; each connection owns its RequestGenerator.

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace segd::load {

enum class Workload {
  kCheck,
  kUserSegments,
  kCount,
  kBatchCheck,
  kQuery,
  kMixed,
  kAdd,
  kImport,
  kEvents
};

// "check", "user-segments", "count", "batch-check", "query", "mixed", "add", "import",
// "events".
absl::StatusOr<Workload> ParseWorkload(absl::string_view name);
const char* WorkloadName(Workload w);

// How user ids are spelt. kHashed: `u-` plus 12 hex digits derived from (seed, index), like the
// hashed ids ad servers use. kDecimal: the index as 12 decimal digits (`000000000042`), the
// spelling of redis-benchmark's __rand_int__, so that peers' own clients can ask for the same
// users.
enum class IdFormat { kHashed, kDecimal };

struct DatasetSpec {
  uint64_t users = 1000000;
  uint32_t segments = 100;
  uint64_t seed = 1;
  IdFormat ids = IdFormat::kHashed;
  uint32_t ttl_seconds = 0;  // every membership's TTL when loaded; 0: none
};

// Segment k (1-based) is `seg-k` and holds users/k of the users (Zipf), chosen by (seed, k).
class Dataset {
 public:
  explicit Dataset(DatasetSpec spec) : spec_(spec) {}
  const DatasetSpec& spec() const { return spec_; }
  std::string UserId(uint64_t index) const;  // index in [0, users)
  static std::string SegmentName(uint32_t k) { return "seg-" + std::to_string(k); }
  uint64_t SegmentSize(uint32_t k) const { return spec_.users / k; }
  // Calls fn(index) for every member of segment k, in a deterministic order.
  template <typename Fn>
  void ForEachMember(uint32_t k, Fn fn) const {
    // Members are a stride walk over the users from a seeded start: distinct, spread out.
    uint64_t n = spec_.users, size = SegmentSize(k);
    uint64_t start = Mix(spec_.seed * 1000003 + k) % n;
    uint64_t stride = k;  // users/k members, every k-th user
    for (uint64_t i = 0; i < size; ++i) fn((start + i * stride) % n);
  }
  static uint64_t Mix(uint64_t x);

  // Event type k (0-based) of the events workload: `ev-k`.
  static std::string EventType(uint32_t k) { return "ev-" + std::to_string(k); }
  // Rule segment k (1-based) of --rules: `rule-k`, and its rule over `event_types` types. Five
  // shapes in turn: a windowed count, a recent event without a later one, a sum, a trait and a
  // filtered count, and an absence with a presence.
  static std::string RuleName(uint32_t k) { return "rule-" + std::to_string(k); }
  static std::string Rule(uint32_t k, uint32_t event_types);

 private:
  DatasetSpec spec_;
};

struct WorkloadSpec {
  Workload workload = Workload::kCheck;
  uint32_t batch = 1000;         // checks per batch-check, lines per import
  double write_fraction = 0.05;  // mixed: share of writes
  uint32_t segment = 0;          // check, count, batch-check, mixed, add, import: this segment
                                 // only; 0: a Zipf-weighted random one per request
  std::string expr;              // query: this expression; empty: two random segments ANDed
  uint32_t event_types = 20;     // events: types ev-0 … ev-(n-1), Zipf-weighted
  double trait_fraction = 0.01;  // events: share of events that carry traits
};

// Produces request bytes for one connection. Deterministic for a given seed.
class RequestGenerator {
 public:
  RequestGenerator(const Dataset& dataset, WorkloadSpec spec, uint64_t seed);
  // Appends one complete request to *out.
  void Append(std::string* out);

 private:
  uint64_t RandomUser() { return rng_() % dataset_.spec().users; }
  // A user drawn from a Zipf(1) law over the users (a few very active, most seldom seen).
  uint64_t ZipfUser();
  void AppendEvent(std::string* out);
  uint32_t RandomSegment();  // spec_.segment, or Zipf-weighted towards the big segments
  std::string RandomSegmentName() { return Dataset::SegmentName(RandomSegment()); }
  void Get(std::string* out, const std::string& target);
  void Post(std::string* out, const std::string& target, absl::string_view type,
            const std::string& body);

  const Dataset& dataset_;
  WorkloadSpec spec_;
  std::mt19937_64 rng_;
  std::vector<double> zipf_cdf_;
  std::vector<double> type_cdf_;
};

}  // namespace segd::load
