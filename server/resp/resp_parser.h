#pragma once

// RespParser: splits a connection's input into commands, as the Redis protocol frames them
// (docs/resp.md, "Framing").
//
// Two framings arrive on the same port, told apart by the first byte of a command:
//   - a multibulk: "*<n>\r\n" then n times "$<len>\r\n<len bytes>\r\n" (every client library,
//     redis-cli, redis-benchmark); "*0" and "*-1" are empty and skipped;
//   - an inline command: one line of words separated by spaces, ended by "\n" (or "\r\n"),
//     with Redis's quoting ("...", '...', and \n \t \xHH escapes in double quotes), as typed
//     into telnet. A blank line is skipped.
//
// The parser is incremental: a large command split over many reads is scanned once, not from
// its start on every read. Between calls the caller may append to the input and may move it
// (the parser keeps offsets, never pointers), but must not change the bytes it has not
// consumed.
//
// Limits (RespLimits) bound what one command may cost before it is complete; a command past
// one is a protocol error. After an error the connection must be closed (the framing is lost),
// as Redis does: the error text, sent as an error reply first, says what was wrong.
//
// Thread safety: confined to one connection (its strand).

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace segd::server::resp {

struct RespLimits {
  // Arguments of one command (the name included). Default: 1,048,576.
  size_t max_args = size_t{1} << 20;
  // Bytes of one argument. Default: 1 MiB.
  size_t max_bulk = size_t{1} << 20;
  // Bytes of one command, framing included. Default: 256 MiB (--max-import-body).
  uint64_t max_command = uint64_t{256} << 20;
  // Bytes of an inline command's line. Default: 64 KiB.
  size_t max_inline = 64 * 1024;
};

class RespParser {
 public:
  enum class Result {
    kNeedMore,  // no complete command in the input yet; read more and call again
    kCommand,   // *args holds a command; consume `*consumed` bytes of the input
    kError,     // the input breaks the protocol or a limit: error() says how
  };

  explicit RespParser(RespLimits limits = {}) : limits_(limits) {}

  // Looks for the next command at the start of `input` (the unconsumed bytes). On kCommand,
  // `args` views the input (or the parser's own storage, for unescaped inline words) and
  // stays valid until the input is changed or Next is called again; `*consumed` is the bytes
  // the command took, blank lines and empty multibulks before it included. On kNeedMore,
  // `*consumed` is the bytes of skipped empty commands the caller may drop now.
  Result Next(absl::string_view input, std::vector<absl::string_view>* args, size_t* consumed);

  // The reason of the last kError, as Redis words it ("Protocol error: invalid bulk length").
  const std::string& error() const { return error_; }
  // Replaces the limits; takes effect from the next command (a command in progress keeps the
  // old ones). Used to loosen the tight limits of a client not yet authenticated.
  void set_limits(const RespLimits& limits) { pending_limits_ = limits; }
  // Whether part of a command has been read (the connection is not between commands).
  bool in_command() const { return state_ != State::kStart; }
  // Bytes the command in progress is known to need in full, from its declared lengths so far
  // (0 when unknown): lets the connection size its next read.
  uint64_t needed() const { return needed_; }

 private:
  enum class State { kStart, kBulkHeader, kBulkData };

  Result Fail(std::string message);
  Result ParseInline(absl::string_view input, std::vector<absl::string_view>* args,
                     size_t* consumed);
  // A "\r\n"-ended line at input[pos_...]: its text without the ending, or false if the ending
  // has not arrived (an error is set when the line is longer than `max`).
  bool Line(absl::string_view input, absl::string_view* line, bool* failed);
  void Reset();

  RespLimits limits_;
  RespLimits pending_limits_ = limits_;  // applied when the next command starts
  std::string error_;

  // The multibulk in progress: offsets are from the command's first byte.
  State state_ = State::kStart;
  size_t pos_ = 0;  // where scanning resumes
  size_t args_left_ = 0;
  size_t bulk_len_ = 0;
  uint64_t needed_ = 0;
  std::vector<std::pair<size_t, size_t>> spans_;  // (offset, length) of each argument read

  std::deque<std::string> words_;  // unescaped inline words
};

}  // namespace segd::server::resp
