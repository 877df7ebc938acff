#include "engine/rules/value.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace segd::engine::rules {

const char* CmpText(Cmp cmp) {
  switch (cmp) {
    case Cmp::kEq:
      return "=";
    case Cmp::kNe:
      return "!=";
    case Cmp::kLt:
      return "<";
    case Cmp::kLe:
      return "<=";
    case Cmp::kGt:
      return ">";
    case Cmp::kGe:
      return ">=";
  }
  return "?";
}

namespace {

template <typename T>
bool Ordered(const T& a, Cmp cmp, const T& b) {
  switch (cmp) {
    case Cmp::kEq:
      return a == b;
    case Cmp::kNe:
      return a != b;
    case Cmp::kLt:
      return a < b;
    case Cmp::kLe:
      return a <= b;
    case Cmp::kGt:
      return a > b;
    case Cmp::kGe:
      return a >= b;
  }
  return false;
}

}  // namespace

bool CompareNumbers(double a, Cmp cmp, double b) { return Ordered(a, cmp, b); }

bool CompareValues(const Value& a, Cmp cmp, const Value& b) {
  if (a.index() != b.index()) return false;
  if (const double* x = std::get_if<double>(&a)) return Ordered(*x, cmp, std::get<double>(b));
  if (const std::string* x = std::get_if<std::string>(&a)) {
    return Ordered(absl::string_view(*x), cmp, absl::string_view(std::get<std::string>(b)));
  }
  const bool x = std::get<bool>(a), y = std::get<bool>(b);
  if (cmp == Cmp::kEq) return x == y;
  if (cmp == Cmp::kNe) return x != y;
  return false;  // the parser refuses ordering of booleans
}

std::string ValueText(const Value& v) {
  if (const double* x = std::get_if<double>(&v)) return absl::StrFormat("%.17g", *x);
  if (const bool* x = std::get_if<bool>(&v)) return *x ? "true" : "false";
  return absl::StrCat("\"", std::get<std::string>(v), "\"");
}

}  // namespace segd::engine::rules
