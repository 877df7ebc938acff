#include "server/detail/json_input.h"

#include "absl/strings/str_cat.h"
#include "engine/engine.h"

namespace segd::server::detail {
namespace {

using simdjson::ondemand::json_type;

simdjson::ondemand::parser& ThreadParser() {
  thread_local simdjson::ondemand::parser parser;
  return parser;
}

absl::Status Malformed(simdjson::error_code error) {
  return engine::BadRequest(absl::StrCat("malformed JSON: ", simdjson::error_message(error)));
}

absl::Status WrongType(std::string_view what, std::string_view expected) {
  return engine::BadRequest(absl::StrCat("'", AsAbsl(what), "' must be ", AsAbsl(expected)));
}

// Distinguishes a value of the wrong type from a malformed document.
absl::Status TypeError(simdjson::error_code error, std::string_view what,
                       std::string_view expected) {
  if (error == simdjson::INCORRECT_TYPE || error == simdjson::NUMBER_OUT_OF_RANGE ||
      error == simdjson::NUMBER_ERROR) {
    return WrongType(what, expected);
  }
  return Malformed(error);
}

absl::Status IterateFields(simdjson::ondemand::object object, FieldFn fn) {
  for (auto field : object) {
    std::string_view key;
    if (auto error = field.unescaped_key().get(key)) return Malformed(error);
    JsonValue value;
    if (auto error = field.value().get(value)) return Malformed(error);
    if (absl::Status s = fn(key, value); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ParseObject(const char* data, size_t len, size_t capacity, FieldFn fn) {
  simdjson::ondemand::document doc;
  if (auto error = ThreadParser().iterate(data, len, capacity).get(doc)) return Malformed(error);
  simdjson::ondemand::object object;
  if (auto error = doc.get_object().get(object)) {
    return error == simdjson::INCORRECT_TYPE ? engine::BadRequest("expected a JSON object")
                                             : Malformed(error);
  }
  // Iterating an object whose end is missing reports an error from the loop itself.
  if (absl::Status s = IterateFields(object, fn); !s.ok()) return s;
  // At the end of the document the iterator has no location; anything else is trailing.
  if (doc.current_location().error() != simdjson::OUT_OF_BOUNDS) {
    return engine::BadRequest("malformed JSON: trailing content after the object");
  }
  return absl::OkStatus();
}

absl::Status ParseObjectBody(std::string& body, FieldFn fn) {
  if (body.empty()) return engine::BadRequest("the body must be a JSON object; it is empty");
  body.reserve(body.size() + simdjson::SIMDJSON_PADDING);
  return ParseObject(body.data(), body.size(), body.capacity(), fn);
}

absl::Status ForEachField(JsonValue& value, std::string_view what, FieldFn fn) {
  simdjson::ondemand::object object;
  if (auto error = value.get_object().get(object)) return TypeError(error, what, "an object");
  return IterateFields(object, fn);
}

absl::Status ForEachElement(JsonValue& value, std::string_view what,
                            absl::FunctionRef<absl::Status(JsonValue&)> fn) {
  simdjson::ondemand::array array;
  if (auto error = value.get_array().get(array)) return TypeError(error, what, "an array");
  for (auto element : array) {
    JsonValue v;
    if (auto error = element.get(v)) return Malformed(error);
    if (absl::Status s = fn(v); !s.ok()) return s;
  }
  return absl::OkStatus();
}

bool IsNull(JsonValue& value) {
  json_type type;
  if (value.type().get(type) || type != json_type::null) return false;
  bool is_null = false;
  return !value.is_null().get(is_null) && is_null;
}

bool IsString(JsonValue& value) {
  json_type type;
  return !value.type().get(type) && type == json_type::string;
}

bool IsObject(JsonValue& value) {
  json_type type;
  return !value.type().get(type) && type == json_type::object;
}

absl::StatusOr<std::optional<engine::rules::Value>> ReadScalar(JsonValue& value,
                                                               std::string_view what) {
  json_type type;
  if (auto error = value.type().get(type)) return TypeError(error, what, "a value");
  switch (type) {
    case json_type::null:
      if (!IsNull(value)) return TypeError(simdjson::INCORRECT_TYPE, what, "null");
      return std::optional<engine::rules::Value>();
    case json_type::string: {
      auto s = ReadString(value, what);
      if (!s.ok()) return s.status();
      return std::optional<engine::rules::Value>(std::string(*s));
    }
    case json_type::number: {
      auto d = ReadNumber(value, what);
      if (!d.ok()) return d.status();
      return std::optional<engine::rules::Value>(*d);
    }
    case json_type::boolean: {
      auto b = ReadBool(value, what);
      if (!b.ok()) return b.status();
      return std::optional<engine::rules::Value>(*b);
    }
    default:
      return engine::BadRequest(absl::StrCat("'", AsAbsl(what),
                                             "' must be a string, a number or a boolean (objects "
                                             "are flat)"));
  }
}

absl::StatusOr<absl::string_view> ReadString(JsonValue& value, std::string_view what) {
  std::string_view s;
  if (auto error = value.get_string().get(s)) return TypeError(error, what, "a string");
  return AsAbsl(s);
}

absl::StatusOr<int64_t> ReadInt(JsonValue& value, std::string_view what) {
  int64_t n;
  if (auto error = value.get_int64().get(n)) return TypeError(error, what, "an integer");
  return n;
}

absl::StatusOr<double> ReadNumber(JsonValue& value, std::string_view what) {
  double d;
  if (auto error = value.get_double().get(d)) return TypeError(error, what, "a number");
  return d;
}

absl::StatusOr<bool> ReadBool(JsonValue& value, std::string_view what) {
  bool b;
  if (auto error = value.get_bool().get(b)) return TypeError(error, what, "true or false");
  return b;
}

absl::StatusOr<absl::string_view> ReadUserId(JsonValue& value, std::string* storage,
                                             std::string_view what) {
  json_type type;
  if (auto error = value.type().get(type)) return Malformed(error);
  if (type == json_type::string) return ReadString(value, what);
  if (type != json_type::number) return WrongType(what, "a string or an integer");
  int64_t n;
  if (!value.get_int64().get(n)) {
    *storage = absl::StrCat(n);
    return absl::string_view(*storage);
  }
  uint64_t u;
  if (!value.get_uint64().get(u)) {
    *storage = absl::StrCat(u);
    return absl::string_view(*storage);
  }
  return WrongType(what, "a string or an integer");
}

absl::Status UnknownField(std::string_view key) {
  return engine::BadRequest(absl::StrCat("unknown field '", AsAbsl(key), "'"));
}

absl::Status MissingField(std::string_view key) {
  return engine::BadRequest(absl::StrCat("missing field '", AsAbsl(key), "'"));
}

}  // namespace segd::server::detail
