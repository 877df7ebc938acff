#pragma once

// Values of traits, event properties and rule literals, and how the rule language compares
// them.
//
// A value is a number (JSON numbers, held as double), a string or a boolean. Comparison
// follows docs/rules.md: numbers compare as numbers, strings as bytes, booleans only for
// equality; comparing values of different kinds is false for every operator, `!=` included,
// so that `NOT (x != 1)` holds when x is missing or a string, like every other comparison.
//
// Thread safety: plain values; the functions are reentrant.

#include <cstdint>
#include <string>
#include <variant>

#include "absl/strings/string_view.h"

namespace segd::engine::rules {

using Value = std::variant<double, bool, std::string>;

enum class Cmp : uint8_t { kEq, kNe, kLt, kLe, kGt, kGe };

// "=", "!=", "<", …
const char* CmpText(Cmp cmp);

// `a cmp b` for two numbers.
bool CompareNumbers(double a, Cmp cmp, double b);
// `a cmp b` under the rules above.
bool CompareValues(const Value& a, Cmp cmp, const Value& b);

// The value as a rule literal would spell it ("x", 12.5, true), for messages and docs.
std::string ValueText(const Value& v);

}  // namespace segd::engine::rules
