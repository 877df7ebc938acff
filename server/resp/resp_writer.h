#pragma once

// RespWriter: appends replies in the Redis protocol to a connection's output, in the version
// the client chose with HELLO (2 by default, or 3).
//
// RESP3 has types of its own that RESP2 spells with the types it has: a null is "$-1" (RESP2)
// or "_" (RESP3); a set ("~") and a map ("%", n pairs) are plain arrays in RESP2 (a map as 2n
// elements); a boolean ("#t") is the integer 1 or 0; a double (",") is a bulk string.
// docs/resp.md lists which command answers with which.
//
// Thread safety: a value confined to one thread at a time.

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace segd::server::resp {

class RespWriter {
 public:
  RespWriter(std::string* out, int protocol) : out_(out), protocol_(protocol) {}

  int protocol() const { return protocol_; }
  std::string* out() { return out_; }

  // "+OK": `text` must hold no CR or LF.
  void Simple(absl::string_view text);
  // "-ERR message": `message` starts with its code (ERR, WRONGTYPE, NOAUTH, NOPERM, …); any CR
  // or LF in it becomes a space.
  void Error(absl::string_view message);
  void Integer(int64_t value);
  void Bulk(absl::string_view bytes);
  void Null();
  void Bool(bool value);
  void Double(double value);
  void Array(size_t n);
  void Set(size_t n);
  void Map(size_t pairs);
  // A text of many lines (INFO): a verbatim string ("=") in RESP3, a bulk string in RESP2.
  void Verbatim(absl::string_view text);

 private:
  void Header(char type, uint64_t n);

  std::string* out_;
  int protocol_;
};

}  // namespace segd::server::resp
