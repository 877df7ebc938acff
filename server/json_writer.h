#pragma once

// JsonWriter: appends JSON text to a caller's string, with correct escaping. No DOM, no
// allocation beyond the output string's growth.
//
// Strings are written as given where they are UTF-8; '"', '\\' and control characters
// (U+0000–U+001F, U+007F) are escaped, and bytes that are not UTF-8 (say, from a malformed path
// echoed in an error message) become U+FFFD, so the output is always valid JSON. The writer
// inserts commas between values; the caller keeps Begin/End calls balanced.
//
// Thread safety: confined to one thread.

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "engine/engine.h"

namespace segd::server {

class JsonWriter {
 public:
  explicit JsonWriter(std::string* out) : out_(out) {}

  JsonWriter& BeginObject();
  JsonWriter& EndObject();
  JsonWriter& BeginArray();
  JsonWriter& EndArray();
  // Writes `"key":`; the next call writes its value.
  JsonWriter& Key(absl::string_view key);
  JsonWriter& String(absl::string_view value);
  JsonWriter& Int(int64_t value);
  JsonWriter& Uint(uint64_t value);
  JsonWriter& Double(double value);
  JsonWriter& Bool(bool value);
  JsonWriter& Null();
  // A time as an RFC 3339 string with milliseconds, or null for `null_value`.
  JsonWriter& Time(engine::TimeMs ms, engine::TimeMs null_value);

 private:
  void Separate();

  std::string* out_;
  bool need_comma_ = false;
};

// Appends `value` escaped for a JSON string, without the quotes.
void AppendJsonEscaped(std::string* out, absl::string_view value);

}  // namespace segd::server
