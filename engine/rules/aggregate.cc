#include "engine/rules/aggregate.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "engine/op_record.h"

namespace segd::engine::rules {
namespace {

const Value* FindProperty(const Event& event, absl::string_view key) {
  for (const EventProperty& p : event.properties) {
    if (p.key == key) return &p.value;
  }
  return nullptr;
}

}  // namespace

bool AggregateSpec::Matches(const Event& event, double* amount) const {
  if (event.type != events.type) return false;
  for (const Predicate& p : events.where) {
    const Value* v = FindProperty(event, p.key);
    if (v == nullptr || !CompareValues(*v, p.cmp, p.literal)) return false;
  }
  if (kind == Kind::kCount) {
    *amount = 1;
    return true;
  }
  const Value* v = FindProperty(event, property);
  const double* n = v == nullptr ? nullptr : std::get_if<double>(v);
  if (n == nullptr) return false;
  *amount = *n;
  return true;
}

std::string AggregateSpec::Describe() const {
  std::string out = absl::StrCat(kind == Kind::kCount ? "count(" : "sum(", events.type);
  for (size_t i = 0; i < events.where.size(); ++i) {
    const Predicate& p = events.where[i];
    absl::StrAppend(&out, i == 0 ? " WHERE " : " AND ", "properties.", p.key, " ", CmpText(p.cmp),
                    " ", ValueText(p.literal));
  }
  if (kind == Kind::kSum) absl::StrAppend(&out, ", properties.", property);
  absl::StrAppend(&out, ", ", window_ms / 1000, "s)");
  return out;
}

void Prune(const AggregateSpec& spec, AggregateState& state, TimeMs through) {
  auto& e = state.entries;
  // Out of every window from `through` on: at + window <= through.
  size_t drop = 0;
  while (drop < e.size() && e[drop].at <= through - spec.window_ms) ++drop;
  if (spec.kind == AggregateSpec::Kind::kCount) {
    // Keep the newest `capacity` entries at or before `through`.
    const size_t current = static_cast<size_t>(
        std::upper_bound(e.begin(), e.end(), through,
                         [](TimeMs t, const AggregateEntry& x) { return t < x.at; }) -
        e.begin());
    if (current > drop + spec.capacity) drop = current - spec.capacity;
  }
  if (drop == 0) return;
  if (spec.kind == AggregateSpec::Kind::kSum) {
    for (size_t i = 0; i < drop; ++i) state.total -= e[i].amount;
    state.dropped_since_exact += static_cast<uint32_t>(drop);
  }
  e.erase(e.begin(), e.begin() + static_cast<ptrdiff_t>(drop));
  if (spec.kind == AggregateSpec::Kind::kSum && state.dropped_since_exact >= e.size()) {
    state.total = 0;
    for (const AggregateEntry& x : e) state.total += x.amount;
    state.dropped_since_exact = 0;
  }
}

void InsertEvent(const AggregateSpec& spec, AggregateState& state, TimeMs at, double amount,
                 TimeMs through) {
  if (at <= through - spec.window_ms) return;
  auto& e = state.entries;
  auto pos = std::upper_bound(e.begin(), e.end(), at,
                              [](TimeMs t, const AggregateEntry& x) { return t < x.at; });
  e.insert(pos, AggregateEntry{at, amount});
  if (spec.kind == AggregateSpec::Kind::kSum) state.total += amount;
  Prune(spec, state, through);
}

void MergeEntries(const AggregateSpec& spec, AggregateState& into, const AggregateState& from,
                  TimeMs through) {
  auto& e = into.entries;
  const size_t mine = e.size();
  for (const AggregateEntry& x : from.entries) {
    if (x.at <= through - spec.window_ms) continue;
    e.push_back(x);
    if (spec.kind == AggregateSpec::Kind::kSum) into.total += x.amount;
  }
  // Both runs are sorted: one merge, then one prune (not one per entry).
  std::inplace_merge(e.begin(), e.begin() + static_cast<ptrdiff_t>(mine), e.end(),
                     [](const AggregateEntry& x, const AggregateEntry& y) { return x.at < y.at; });
  Prune(spec, into, through);
}

double ValueAt(const AggregateSpec& spec, const AggregateState& state, TimeMs t) {
  if (spec.kind == AggregateSpec::Kind::kSum) {
    // Everything, less what has left the window at the front and what is still to come at the
    // back: both short walks when t is near the time the state was last pruned.
    const auto& e = state.entries;
    double outside = 0;
    size_t front = 0;
    while (front < e.size() && e[front].at <= t - spec.window_ms) outside += e[front++].amount;
    for (size_t back = e.size(); back > front && e[back - 1].at > t; --back) {
      outside += e[back - 1].amount;
    }
    return state.total - outside;
  }
  double total = 0;
  for (const AggregateEntry& x : state.entries) {
    if (x.at > t) break;
    if (x.at > t - spec.window_ms) total += x.amount;
  }
  return total;
}

TimeMs NextChange(const AggregateSpec& spec, const AggregateState& state, TimeMs after) {
  const auto& e = state.entries;
  // Entering: the first entry with at > after. Leaving: the oldest entry at or before `after`
  // still in the window, at its at + window (entries are sorted, so that is the first one).
  auto entering = std::upper_bound(e.begin(), e.end(), after,
                                   [](TimeMs t, const AggregateEntry& x) { return t < x.at; });
  TimeMs next = entering == e.end() ? 0 : entering->at;
  for (auto it = e.begin(); it != entering; ++it) {
    const TimeMs leaves = it->at + spec.window_ms;
    if (leaves > after) {
      if (next == 0 || leaves < next) next = leaves;
      break;
    }
  }
  return next;
}

}  // namespace segd::engine::rules
