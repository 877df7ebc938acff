#include "server/access/principal.h"

namespace segd::server::access {

absl::string_view RoleName(Role role) {
  switch (role) {
    case Role::kPublic:
      return "public";
    case Role::kReader:
      return "reader";
    case Role::kWriter:
      return "writer";
    case Role::kAdmin:
      return "admin";
  }
  return "public";
}

std::optional<Role> ParseRole(absl::string_view name) {
  if (name == "reader") return Role::kReader;
  if (name == "writer") return Role::kWriter;
  if (name == "admin") return Role::kAdmin;
  return std::nullopt;
}

bool GlobMatches(absl::string_view glob, absl::string_view name) {
  // Greedy match with one backtrack point: the last '*' seen and where it resumed in `name`.
  size_t g = 0, n = 0;
  size_t star = absl::string_view::npos, resume = 0;
  while (n < name.size()) {
    if (g < glob.size() && (glob[g] == '?' || glob[g] == name[n])) {
      ++g;
      ++n;
    } else if (g < glob.size() && glob[g] == '*') {
      star = g++;
      resume = n;
    } else if (star != absl::string_view::npos) {
      g = star + 1;
      n = ++resume;
    } else {
      return false;
    }
  }
  while (g < glob.size() && glob[g] == '*') ++g;
  return g == glob.size();
}

bool ValidGlob(absl::string_view glob) {
  if (glob.empty() || glob.size() > 128) return false;
  for (char c : glob) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == ':' || c == '-' || c == '*' || c == '?';
    if (!ok) return false;
  }
  return true;
}

namespace {

// Threads take stripes in turn, so that the first kStripes threads never share one.
size_t StripeOfThisThread() {
  static std::atomic<size_t> next{0};
  thread_local const size_t stripe =
      next.fetch_add(1, std::memory_order_relaxed) % KeyUsage::kStripes;
  return stripe;
}

}  // namespace

void KeyUsage::Count(int64_t now_minute) {
  stripes[StripeOfThisThread()].requests.fetch_add(1, std::memory_order_relaxed);
  if (last_used_minute.load(std::memory_order_relaxed) != now_minute) {
    last_used_minute.store(now_minute, std::memory_order_relaxed);
  }
}

uint64_t KeyUsage::requests() const {
  uint64_t sum = 0;
  for (const Stripe& s : stripes) sum += s.requests.load(std::memory_order_relaxed);
  return sum;
}

bool Principal::CanSee(absl::string_view name) const {
  if (scope.empty()) return true;
  for (const std::string& glob : scope) {
    if (GlobMatches(glob, name)) return true;
  }
  return false;
}

}  // namespace segd::server::access
