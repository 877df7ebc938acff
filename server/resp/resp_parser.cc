#include "server/resp/resp_parser.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace segd::server::resp {
namespace {

// A length line ("*3", "$12") is at most this long with its ending; longer is not a number.
constexpr size_t kMaxLengthLine = 32;

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Splits an inline command line into words with Redis's quoting rules. False if a quote is
// not closed, or a closing quote is not followed by a space.
bool SplitWords(absl::string_view line, std::deque<std::string>* words) {
  size_t i = 0;
  const size_t n = line.size();
  while (true) {
    while (i < n && IsSpace(line[i])) ++i;
    if (i == n) return true;
    std::string word;
    if (line[i] == '"' || line[i] == '\'') {
      // In double quotes: \xHH, \n \r \t \b \a, and \c for any other c. In single quotes
      // only \' is an escape.
      const char quote = line[i++];
      while (true) {
        if (i == n) return false;
        const char c = line[i];
        if (c == quote) {
          ++i;
          if (i < n && !IsSpace(line[i])) return false;
          break;
        }
        if (c == '\\' && i + 1 < n && quote == '"') {
          if (i + 3 < n && line[i + 1] == 'x' && HexValue(line[i + 2]) >= 0 &&
              HexValue(line[i + 3]) >= 0) {
            word.push_back(static_cast<char>(HexValue(line[i + 2]) * 16 + HexValue(line[i + 3])));
            i += 4;
            continue;
          }
          static constexpr std::pair<char, char> kEscapes[] = {
              {'n', '\n'}, {'r', '\r'}, {'t', '\t'}, {'b', '\b'}, {'a', '\a'}};
          char out = line[i + 1];
          for (const auto& [from, to] : kEscapes) {
            if (line[i + 1] == from) out = to;
          }
          word.push_back(out);
          i += 2;
          continue;
        }
        if (c == '\\' && i + 1 < n && quote == '\'' && line[i + 1] == '\'') {
          word.push_back('\'');
          i += 2;
          continue;
        }
        word.push_back(c);
        ++i;
      }
    } else {
      while (i < n && !IsSpace(line[i])) word.push_back(line[i++]);
    }
    words->push_back(std::move(word));
  }
}

// A length line's number: an optional '-' and 1-18 digits, nothing else (no '+', no spaces).
// A hot path (two per argument), hence not SimpleAtoi.
bool ParseLength(absl::string_view text, int64_t* value) {
  bool negative = false;
  if (!text.empty() && text[0] == '-') {
    negative = true;
    text.remove_prefix(1);
  }
  if (text.empty() || text.size() > 18) return false;
  int64_t n = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + (c - '0');
  }
  *value = negative ? -n : n;
  return true;
}

}  // namespace

void RespParser::Reset() {
  state_ = State::kStart;
  pos_ = 0;
  args_left_ = 0;
  bulk_len_ = 0;
  needed_ = 0;
  spans_.clear();
}

RespParser::Result RespParser::Fail(std::string message) {
  error_ = std::move(message);
  Reset();
  return Result::kError;
}

bool RespParser::Line(absl::string_view input, absl::string_view* line, bool* failed) {
  const size_t limit = std::min(input.size(), pos_ + kMaxLengthLine);
  for (size_t i = pos_; i + 1 < limit; ++i) {
    if (input[i] == '\r' && input[i + 1] == '\n') {
      *line = input.substr(pos_, i - pos_);
      pos_ = i + 2;
      return true;
    }
  }
  // No ending in the first kMaxLengthLine bytes: no length is that long.
  *failed = input.size() >= pos_ + kMaxLengthLine;
  return false;
}

RespParser::Result RespParser::Next(absl::string_view input, std::vector<absl::string_view>* args,
                                    size_t* consumed) {
  args->clear();
  size_t skipped = 0;
  while (state_ == State::kStart) {
    limits_ = pending_limits_;
    absl::string_view rest = input.substr(skipped);
    if (rest.empty()) {
      *consumed = skipped;
      return Result::kNeedMore;
    }
    if (rest[0] != '*') {
      size_t used = 0;
      words_.clear();
      Result r = ParseInline(rest, args, &used);
      if (r == Result::kError) return r;
      if (r == Result::kNeedMore) {
        *consumed = skipped;
        return r;
      }
      skipped += used;
      if (args->empty()) continue;  // a blank line
      *consumed = skipped;
      return Result::kCommand;
    }
    pos_ = 1;
    absl::string_view line;
    bool failed = false;
    if (!Line(rest, &line, &failed)) {
      pos_ = 0;
      *consumed = skipped;
      if (failed) return Fail("Protocol error: invalid multibulk length");
      return Result::kNeedMore;
    }
    int64_t count = 0;
    if (!ParseLength(line, &count) || count > static_cast<int64_t>(limits_.max_args) ||
        count < -1) {
      return Fail("Protocol error: invalid multibulk length");
    }
    if (count <= 0) {  // an empty command: skipped, as Redis does
      skipped += pos_;
      pos_ = 0;
      continue;
    }
    args_left_ = static_cast<size_t>(count);
    spans_.reserve(std::min<size_t>(args_left_, 1024));
    needed_ = pos_ + 4 * args_left_;
    state_ = State::kBulkHeader;
  }

  absl::string_view command = input.substr(skipped);
  while (args_left_ > 0) {
    if (state_ == State::kBulkHeader) {
      if (pos_ >= command.size()) break;
      if (command[pos_] != '$') {
        return Fail(absl::StrCat("Protocol error: expected '$', got '",
                                 absl::CEscape(command.substr(pos_, 1)), "'"));
      }
      const size_t start = pos_;
      ++pos_;
      absl::string_view line;
      bool failed = false;
      if (!Line(command, &line, &failed)) {
        pos_ = start;
        if (failed) return Fail("Protocol error: invalid bulk length");
        break;
      }
      int64_t len = 0;
      if (!ParseLength(line, &len) || len < 0 || static_cast<uint64_t>(len) > limits_.max_bulk) {
        return Fail("Protocol error: invalid bulk length");
      }
      bulk_len_ = static_cast<size_t>(len);
      needed_ = pos_ + bulk_len_ + 2 + 4 * (args_left_ - 1);
      if (needed_ > limits_.max_command) {
        return Fail(
            absl::StrCat("Protocol error: command larger than ", limits_.max_command, " bytes"));
      }
      state_ = State::kBulkData;
    }
    if (command.size() < pos_ + bulk_len_ + 2) break;
    if (command[pos_ + bulk_len_] != '\r' || command[pos_ + bulk_len_ + 1] != '\n') {
      return Fail("Protocol error: bulk string not ended by CRLF");
    }
    spans_.emplace_back(pos_, bulk_len_);
    pos_ += bulk_len_ + 2;
    --args_left_;
    state_ = State::kBulkHeader;
  }
  if (args_left_ > 0) {
    *consumed = skipped;
    return Result::kNeedMore;
  }
  args->reserve(spans_.size());
  for (const auto& [offset, length] : spans_) args->push_back(command.substr(offset, length));
  *consumed = skipped + pos_;
  Reset();
  return Result::kCommand;
}

RespParser::Result RespParser::ParseInline(absl::string_view input,
                                           std::vector<absl::string_view>* args, size_t* consumed) {
  const size_t end = input.find('\n');
  if (end == absl::string_view::npos) {
    if (input.size() > limits_.max_inline) return Fail("Protocol error: too big inline request");
    return Result::kNeedMore;
  }
  if (end > limits_.max_inline) return Fail("Protocol error: too big inline request");
  absl::string_view line = input.substr(0, end);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (!SplitWords(line, &words_)) return Fail("Protocol error: unbalanced quotes in request");
  if (words_.size() > limits_.max_args) return Fail("Protocol error: invalid multibulk length");
  for (const std::string& w : words_) args->push_back(w);
  *consumed = end + 1;
  return Result::kCommand;
}

}  // namespace segd::server::resp
