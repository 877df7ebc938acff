#pragma once

// Router: a table of (method, path pattern) → route id, matched segment by segment.
//
// Patterns are written like `/v1/segments/{name}/users/{user_id}` or `/v1/reports/{id}.csv`:
// a `{…}` segment captures one path segment (optionally followed by a literal suffix, which is
// not captured). Captured segments are percent-decoded, so user ids may hold `/`, `@`, spaces.
// Literal segments are compared as sent.
//
// Thread safety: build the table once, then Match from any number of threads.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace segd::server {

// Percent-decodes `in` into *out. With `plus_is_space` (query strings), '+' reads as ' '.
// Errors: InvalidArgument for a '%' not followed by two hex digits.
absl::Status PercentDecode(absl::string_view in, bool plus_is_space, std::string* out);

struct RouteMatch {
  enum class Kind { kFound, kNoPath, kWrongMethod };
  Kind kind = Kind::kNoPath;
  int route = -1;                   // kFound: the id given to Add
  std::vector<std::string> params;  // kFound: decoded captures, in pattern order
  std::string allow;                // kWrongMethod: the methods the path accepts, "GET, POST"
  absl::Status error;               // kFound with a capture that does not decode
  bool head = false;                // a HEAD request routed as GET: answer without the body
};

class Router {
 public:
  // Adds a route. `method` is upper case ("GET"). REQUIRES: not called after the first Match.
  void Add(absl::string_view method, absl::string_view pattern, int route);
  // Matches `path` (the target without its query).
  RouteMatch Match(absl::string_view method, absl::string_view path) const;

 private:
  struct Segment {
    bool capture = false;
    std::string text;  // literal text, or the capture's literal suffix
  };
  struct Route {
    std::string method;
    std::vector<Segment> segments;
    int id = -1;
  };
  static bool SegmentMatches(const Segment& pattern, absl::string_view segment);

  std::vector<Route> routes_;
};

}  // namespace segd::server
