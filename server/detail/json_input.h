#pragma once

// Reading request bodies with simdjson's on-demand API, with every simdjson error turned into a
// bad_request absl::Status that names the field (the one boundary for simdjson errors).
//
// Strictness: the top level must be one object and nothing may follow it; every field is
// visited (so the whole body is validated, not just the parts read), and handlers reject
// fields they do not know, so a misspelt field is an error, not silently ignored.
// Strings are returned as absl::string_view (Debian's Abseil does not alias std::string_view);
// string views returned stay valid until the calling thread parses the next document.
//
// Thread safety: each thread uses its own parser; the functions are reentrant per thread.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/rules/value.h"
#include "simdjson.h"

namespace segd::server::detail {

using JsonValue = simdjson::ondemand::value;
using FieldFn = absl::FunctionRef<absl::Status(std::string_view key, JsonValue& value)>;

// Parses data[0, len) as one JSON object and calls fn for each field. `capacity` - `len` bytes
// after the data must be readable (simdjson reads ahead); at least SIMDJSON_PADDING.
absl::Status ParseObject(const char* data, size_t len, size_t capacity, FieldFn fn);
// As above over a whole request body, padding it in place.
absl::Status ParseObjectBody(std::string& body, FieldFn fn);

// Calls fn for each field of a nested object.
absl::Status ForEachField(JsonValue& value, std::string_view what, FieldFn fn);
// Calls fn for each element of an array.
absl::Status ForEachElement(JsonValue& value, std::string_view what,
                            absl::FunctionRef<absl::Status(JsonValue&)> fn);

bool IsNull(JsonValue& value);
bool IsString(JsonValue& value);
bool IsObject(JsonValue& value);
absl::StatusOr<absl::string_view> ReadString(JsonValue& value, std::string_view what);
absl::StatusOr<int64_t> ReadInt(JsonValue& value, std::string_view what);
absl::StatusOr<double> ReadNumber(JsonValue& value, std::string_view what);
absl::StatusOr<bool> ReadBool(JsonValue& value, std::string_view what);
// A string, number or boolean; null gives nullopt. Arrays and objects are errors.
absl::StatusOr<std::optional<engine::rules::Value>> ReadScalar(JsonValue& value,
                                                               std::string_view what);
// A user_id: a string, or a JSON integer read as its decimal text (written to *storage).
absl::StatusOr<absl::string_view> ReadUserId(JsonValue& value, std::string* storage,
                                             std::string_view what);

// Debian's Abseil has its own string_view type; simdjson hands out std::string_view.
inline absl::string_view AsAbsl(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

absl::Status UnknownField(std::string_view key);
absl::Status MissingField(std::string_view key);

}  // namespace segd::server::detail
