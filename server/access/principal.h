#pragma once

// Who is calling: the role and segment scope that an API key or a JWT grants, and what a
// request needs of them.
//
// Roles are ordered: a writer may do what a reader may, an admin what a writer may. A scope is
// a list of segment-name globs (`*` matches any run of characters, `?` one character); an
// empty scope means every segment.
//
// Thread safety: a Principal is immutable once made, except its usage counters (atomics), and
// is shared between threads through shared_ptr.

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace segd::server::access {

// What a route requires. kPublic routes are answered without credentials. (No enumerator is
// 0, so a route table row that leaves its role out is caught at compile time: api.cc.)
enum class Role : uint8_t { kPublic = 1, kReader = 2, kWriter = 3, kAdmin = 4 };

// "reader", "writer", "admin" ("public" for kPublic).
absl::string_view RoleName(Role role);
// The role named `name` (reader, writer or admin), nullopt otherwise.
std::optional<Role> ParseRole(absl::string_view name);

// Whether `name` matches `glob` (`*` any run, `?` one byte; everything else literally).
bool GlobMatches(absl::string_view glob, absl::string_view name);
// Checks a scope glob: 1–128 bytes of the characters of a segment name plus `*` and `?`.
bool ValidGlob(absl::string_view glob);

// Per-key request counters and the minute it was last used, shared by every principal of one
// key. Counting is striped so that threads do not share a cache line per request.
struct KeyUsage {
  static constexpr size_t kStripes = 8;
  struct alignas(64) Stripe {
    std::atomic<uint64_t> requests{0};
  };
  Stripe stripes[kStripes];
  // Unix minute of the last request (0: never); persisted by the key store about once a
  // minute.
  std::atomic<int64_t> last_used_minute{0};

  void Count(int64_t now_minute);
  uint64_t requests() const;
};

struct Principal {
  Role role = Role::kReader;
  std::vector<std::string> scope;  // segment-name globs; empty: every segment
  // How the caller is named in metrics and logs: the key's id, or "jwt".
  std::string id;
  std::shared_ptr<KeyUsage> usage;  // null for JWTs (they count under "jwt")

  bool Allows(Role required) const { return role >= required; }
  bool Unscoped() const { return scope.empty(); }
  // Whether the scope covers segment `name`.
  bool CanSee(absl::string_view name) const;
};

}  // namespace segd::server::access
