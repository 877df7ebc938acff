#include "server/router.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace segd::server {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

absl::Status PercentDecode(absl::string_view in, bool plus_is_space, std::string* out) {
  out->clear();
  out->reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      int hi = i + 2 < in.size() ? HexValue(in[i + 1]) : -1;
      int lo = i + 2 < in.size() ? HexValue(in[i + 2]) : -1;
      if (hi < 0 || lo < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("bad percent-encoding at byte ", i, " of '", in, "'"));
      }
      out->push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out->push_back(' ');
    } else {
      out->push_back(c);
    }
  }
  return absl::OkStatus();
}

void Router::Add(absl::string_view method, absl::string_view pattern, int route) {
  Route r;
  r.method = std::string(method);
  r.id = route;
  for (absl::string_view part : absl::StrSplit(pattern.substr(1), '/')) {
    Segment s;
    if (!part.empty() && part[0] == '{') {
      s.capture = true;
      s.text = std::string(part.substr(part.find('}') + 1));
    } else {
      s.text = std::string(part);
    }
    r.segments.push_back(std::move(s));
  }
  routes_.push_back(std::move(r));
}

bool Router::SegmentMatches(const Segment& pattern, absl::string_view segment) {
  if (!pattern.capture) return segment == pattern.text;
  return segment.size() >= pattern.text.size() && absl::EndsWith(segment, pattern.text);
}

RouteMatch Router::Match(absl::string_view method, absl::string_view path) const {
  RouteMatch match;
  if (path.empty() || path[0] != '/') return match;
  // At most 8 segments matter; a longer path matches nothing.
  absl::string_view parts[8];
  size_t count = 0;
  for (absl::string_view part : absl::StrSplit(path.substr(1), '/')) {
    if (count == 8) return match;
    parts[count++] = part;
  }
  const Route* found = nullptr;
  for (const Route& route : routes_) {
    if (route.segments.size() != count) continue;
    bool same = true;
    for (size_t i = 0; i < count && same; ++i) same = SegmentMatches(route.segments[i], parts[i]);
    if (!same) continue;
    if (route.method == method) {
      found = &route;
      break;
    }
    if (!match.allow.empty()) match.allow += ", ";
    match.allow += route.method;
    match.kind = RouteMatch::Kind::kWrongMethod;
  }
  if (found == nullptr) return match;
  match.kind = RouteMatch::Kind::kFound;
  match.route = found->id;
  match.allow.clear();
  for (size_t i = 0; i < count; ++i) {
    const Segment& s = found->segments[i];
    if (!s.capture) continue;
    absl::string_view raw = parts[i].substr(0, parts[i].size() - s.text.size());
    std::string decoded;
    if (absl::Status st = PercentDecode(raw, false, &decoded); !st.ok() && match.error.ok()) {
      match.error = st;
    }
    match.params.push_back(std::move(decoded));
  }
  return match;
}

}  // namespace segd::server
