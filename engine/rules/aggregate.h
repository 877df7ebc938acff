#pragma once

// Aggregates: the per-user values that count(…), sum(…) and did(…) read, and the smallest
// state that answers them exactly at any time from now on.
//
// An aggregate is identified by its AggregateSpec. Its state for one user is the list of the
// user's matching events that can still matter, sorted by `at`, each with the value summed
// (1 for a count). "Still matter" is decided against `through`, the time up to which segd has
// already acted on every deadline (RuleSet): every later question is about a time t > through.
//   - An event with at + window <= through is out of every such window: it is dropped.
//   - For a count, only the newest `capacity` events with at <= through can matter: the rules
//     reading it compare the count with numbers below capacity, and count >= k holds exactly
//     when the k-th newest event is in the window. Events with at > through (sent with a future
//     `at`) are all kept: they enter the window later, one by one.
// The result does not depend on the order events are inserted in, which is what lets a
// backfill insert old events while new ones arrive.
//
// Thread safety: plain values and pure functions; RuleSet guards the states.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "engine/rules/rule_parser.h"
#include "engine/types.h"

namespace segd::engine {
struct Event;
}

namespace segd::engine::rules {

struct AggregateSpec {
  enum class Kind : uint8_t { kCount, kSum };
  Kind kind = Kind::kCount;
  EventFilter events;
  std::string property;   // kSum
  TimeMs window_ms = 0;   // resolved: the event retention when the rule left it out
  uint32_t capacity = 0;  // kCount: events kept at or before `through`; kSum: 0 (all)

  // Whether `event` counts, and the amount it adds (1 for a count; the property's value for a
  // sum, which must be a number).
  bool Matches(const Event& event, double* amount) const;
  // Same aggregate, ignoring capacity.
  bool SameValues(const AggregateSpec& other) const {
    return kind == other.kind && events == other.events && property == other.property &&
           window_ms == other.window_ms;
  }
  // "count(page_viewed, 604800s)", for /metrics and messages.
  std::string Describe() const;
};

struct AggregateEntry {
  TimeMs at;
  double amount;
};

struct AggregateState {
  // Sorted by at. Most states hold one entry (a did, or a count of a user seldom seen): it is
  // kept inline, with no allocation of its own.
  absl::InlinedVector<AggregateEntry, 1> entries;
  TimeMs deadline = 0;  // the entry scheduled in RuleSet's wheel, 0 if none
  // Sums: the amounts of every entry, so that a value needs only the few entries outside the
  // window at its two edges. Kept by adding and subtracting, and recomputed whenever as many
  // entries have been dropped as remain (so rounding cannot build up).
  double total = 0;
  uint32_t dropped_since_exact = 0;
};

// Adds one matching event. See the header comment for what is kept.
void InsertEvent(const AggregateSpec& spec, AggregateState& state, TimeMs at, double amount,
                 TimeMs through);
// Adds every entry of `from` to `into` (a user merged into another): the same state as
// inserting them one by one, in one merge and one prune.
void MergeEntries(const AggregateSpec& spec, AggregateState& into, const AggregateState& from,
                  TimeMs through);
// Drops what cannot matter after `through`.
void Prune(const AggregateSpec& spec, AggregateState& state, TimeMs through);
// The aggregate's value at time t (events with at in (t - window, t]). For a count it is
// exact up to the capacity and at least the capacity beyond it. A sum walks only the entries
// outside the window (at or before t - window, after t), a count at most all of them.
double ValueAt(const AggregateSpec& spec, const AggregateState& state, TimeMs t);
// The first moment after `after` at which the value may change without a new event (an event
// entering or leaving the window), or 0 if none.
TimeMs NextChange(const AggregateSpec& spec, const AggregateState& state, TimeMs after);

}  // namespace segd::engine::rules
