#pragma once

// Checks of a request's framing and header that segd makes before routing it, beyond what
// Beast's parser enforces, so that no two readers of the same bytes (a proxy in front, segd)
// can disagree about where a request ends (request smuggling, RFC 9112 §6.1 and §6.3):
//   - Transfer-Encoding other than exactly "chunked": 400 (segd decodes nothing else).
//   - Transfer-Encoding together with Content-Length: 400.
//   - HTTP/1.1 without a Host header, or with more than one: 400.
//   - Obsolete line folding (a header line starting with a space or tab): 400; see
//     HasObsoleteLineFolding, which reads the raw bytes because the parser unfolds them.
//   - Expect other than "100-continue": 417.
// Every rejection closes the connection after the answer: its framing cannot be trusted.
//
// Thread safety: pure functions.

#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/message.hpp>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace segd::server {

struct FramingRejection {
  unsigned status;
  const char* code;  // the API's error code
  std::string message;
};

// The first problem of a parsed request header, if any.
std::optional<FramingRejection> CheckRequestFraming(
    const boost::beast::http::request_header<>& header);

// Whether the start of `bytes` (a request's first bytes, up to and past the end of its header
// or not) folds a header line: a CRLF followed by a space or tab before the header's end.
bool HasObsoleteLineFolding(absl::string_view bytes);

}  // namespace segd::server
