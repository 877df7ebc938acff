#pragma once

// OutputBatch: the bytes of a connection's next write, framed as HTTP/1.1 responses.
//
// Small text (heads, small bodies, chunk-size lines) is appended to a shared tail piece; large
// bodies and streamed chunks become pieces of their own, written with the rest in one gather
// write and never copied. Heads carry Server, Date (formatted once a second per thread) and
// Content-Type, the response's extra headers, and Connection: close when the connection ends
// after the response.
//
// Thread safety: confined to one thread at a time (a connection's strand).

#include <cstddef>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "server/api.h"

namespace segd::server::detail {

// "Date: Sun, 22 Nov 2026 10:00:00 GMT\r\n" for the current second.
absl::string_view DateHeader();

class OutputBatch {
 public:
  // Bodies below this size are copied into the tail piece; larger ones are moved in whole.
  static constexpr size_t kCopyBodyBelow = 16 * 1024;

  // A complete response, framed by Content-Length (none for 204). A large body is moved out
  // of `response`. With `head_only` (a HEAD request) the body is left out and Content-Length
  // still gives its size.
  void AddResponse(Response& response, bool keep_alive, bool head_only = false);
  // The head of a response whose body follows in chunks (Transfer-Encoding: chunked), or of a
  // HEAD request's answer when it would have been streamed (no chunk follows then).
  void AddChunkedHead(const Response& response, bool keep_alive);
  // One chunk of a chunked body; nothing for an empty one (it would end the body).
  void AddChunk(std::string chunk);
  // The end of a chunked body.
  void AddLastChunk() { AddText("0\r\n\r\n"); }
  // Bytes as they are (an interim 100 Continue).
  void AddText(absl::string_view text);

  bool empty() const { return pieces_.empty(); }
  // Body bytes added since the last Clear: what bounds a batch of pipelined answers.
  size_t body_bytes() const { return body_bytes_; }
  // The pieces, in order; valid until the next Add or Clear.
  const std::vector<std::string>& pieces() const { return pieces_; }
  void Clear();

 private:
  std::string& Tail();

  std::vector<std::string> pieces_;
  bool tail_open_ = false;  // pieces_.back() may take more small text
  size_t body_bytes_ = 0;
};

}  // namespace segd::server::detail
