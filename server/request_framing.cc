#include "server/request_framing.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace segd::server {

namespace http = boost::beast::http;

namespace {

absl::string_view View(boost::beast::string_view s) { return {s.data(), s.size()}; }

}  // namespace

std::optional<FramingRejection> CheckRequestFraming(const http::request_header<>& header) {
  const auto te = header.find(http::field::transfer_encoding);
  if (te != header.end()) {
    if (header.count(http::field::transfer_encoding) > 1 ||
        !absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(View(te->value())), "chunked")) {
      return FramingRejection{400, "bad_request",
                              "Transfer-Encoding must be exactly 'chunked'; segd decodes no "
                              "other coding"};
    }
    if (header.count(http::field::content_length) > 0) {
      return FramingRejection{400, "bad_request",
                              "a request may not carry both Transfer-Encoding and "
                              "Content-Length (RFC 9112 section 6.3)"};
    }
  }
  const size_t hosts = header.count(http::field::host);
  if (header.version() >= 11 && hosts == 0) {
    return FramingRejection{400, "bad_request", "an HTTP/1.1 request needs a Host header"};
  }
  if (hosts > 1) {
    return FramingRejection{400, "bad_request", "a request may carry only one Host header"};
  }
  const auto expect = header.find(http::field::expect);
  if (expect != header.end() &&
      !absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(View(expect->value())), "100-continue")) {
    return FramingRejection{417, "expectation_failed",
                            "the only expectation segd meets is Expect: 100-continue"};
  }
  return std::nullopt;
}

bool HasObsoleteLineFolding(absl::string_view bytes) {
  // Up to the end of the header (or of what has arrived of it).
  const size_t end = bytes.find("\r\n\r\n");
  const absl::string_view head =
      bytes.substr(0, end == absl::string_view::npos ? bytes.size() : end + 2);
  for (size_t at = head.find("\r\n"); at != absl::string_view::npos;
       at = head.find("\r\n", at + 2)) {
    if (at + 2 < head.size() && (head[at + 2] == ' ' || head[at + 2] == '\t')) return true;
  }
  return false;
}

}  // namespace segd::server
