#include "engine/rules/rule_parser.h"

#include <cmath>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "engine/errors.h"

namespace segd::engine::rules {
namespace {

bool IsWordChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == ':' ||
         c == '-' || c == '+';
}

struct Token {
  enum class Kind { kWord, kString, kOpen, kClose, kComma, kCmp, kEnd };
  Kind kind = Kind::kEnd;
  absl::string_view text;  // kString: the contents, unescaped in `str`
  std::string str;
  Cmp cmp = Cmp::kEq;
  size_t position = 0;
};

std::string Describe(const Token& t) {
  switch (t.kind) {
    case Token::Kind::kWord:
      return absl::StrCat("'", t.text, "'");
    case Token::Kind::kString:
      return "a string";
    case Token::Kind::kOpen:
      return "'('";
    case Token::Kind::kClose:
      return "')'";
    case Token::Kind::kComma:
      return "','";
    case Token::Kind::kCmp:
      return absl::StrCat("'", CmpText(t.cmp), "'");
    case Token::Kind::kEnd:
      return "the end";
  }
  return "?";
}

// A number literal: the whole word, finite, spelled with digits (not "inf" or "nan").
bool ParseNumber(absl::string_view word, double* out) {
  if (word.empty()) return false;
  const char c = word[0] == '-' || word[0] == '+' ? (word.size() > 1 ? word[1] : 'x') : word[0];
  if (!absl::ascii_isdigit(static_cast<unsigned char>(c)) && c != '.') return false;
  return absl::SimpleAtod(word, out) && std::isfinite(*out);
}

class Parser {
 public:
  Parser(absl::string_view src, const RuleLimits& limits) : src_(src), limits_(limits) {}

  absl::StatusOr<ParsedRule> Parse() {
    if (src_.size() > kMaxRuleBytes) {
      return SyntaxError(absl::StrCat("a rule is at most ", kMaxRuleBytes, " bytes"),
                         kMaxRuleBytes);
    }
    if (src_.find_first_not_of(" \t\r\n") == absl::string_view::npos) {
      return SyntaxError("the rule is empty", 0);
    }
    if (absl::Status s = Advance(); !s.ok()) return s;
    absl::StatusOr<RuleNode> root = ParseOr(0);
    if (!root.ok()) return root.status();
    if (tok_.kind != Token::Kind::kEnd) {
      return SyntaxError(
          absl::StrCat("expected AND, OR or the end, found ", Describe(tok_), KeywordHint()),
          tok_.position);
    }
    out_.root = *std::move(root);
    return std::move(out_);
  }

 private:
  // "; keywords are upper case: write AND" when the token at fault is a keyword in lower case.
  std::string KeywordHint() const {
    if (tok_.kind != Token::Kind::kWord) return "";
    const std::string upper = absl::AsciiStrToUpper(tok_.text);
    for (absl::string_view kw : {"AND", "OR", "NOT", "WHERE", "IN"}) {
      if (upper == kw && tok_.text != kw) {
        return absl::StrCat("; keywords are upper case: write ", kw, ", not ", tok_.text);
      }
    }
    return "";
  }

  absl::Status Advance() {
    while (pos_ < src_.size() &&
           (src_[pos_] == ' ' || src_[pos_] == '\t' || src_[pos_] == '\n' || src_[pos_] == '\r')) {
      ++pos_;
    }
    tok_ = Token{};
    tok_.position = pos_;
    if (pos_ == src_.size()) return absl::OkStatus();
    const size_t start = pos_;
    const char c = src_[pos_];
    auto single = [&](Token::Kind kind) {
      ++pos_;
      tok_.kind = kind;
      tok_.text = src_.substr(start, 1);
      return absl::OkStatus();
    };
    if (c == '(') return single(Token::Kind::kOpen);
    if (c == ')') return single(Token::Kind::kClose);
    if (c == ',') return single(Token::Kind::kComma);
    if (c == '=' || c == '!' || c == '<' || c == '>') {
      const bool eq_next = pos_ + 1 < src_.size() && src_[pos_ + 1] == '=';
      tok_.kind = Token::Kind::kCmp;
      if (c == '=') {
        tok_.cmp = Cmp::kEq;
        pos_ += eq_next ? 2 : 1;  // "==" reads as "="
      } else if (c == '!') {
        if (!eq_next) return SyntaxError("'!' must be followed by '=' (write != or NOT)", start);
        tok_.cmp = Cmp::kNe;
        pos_ += 2;
      } else {
        tok_.cmp = c == '<' ? (eq_next ? Cmp::kLe : Cmp::kLt) : (eq_next ? Cmp::kGe : Cmp::kGt);
        pos_ += eq_next ? 2 : 1;
      }
      tok_.text = src_.substr(start, pos_ - start);
      return absl::OkStatus();
    }
    if (c == '"') {
      ++pos_;
      std::string s;
      while (true) {
        if (pos_ >= src_.size()) return SyntaxError("unterminated string", start);
        const char d = src_[pos_];
        if (d == '"') break;
        if (static_cast<unsigned char>(d) < 0x20) {
          return SyntaxError("control character in a string", pos_);
        }
        if (d == '\\') {
          if (pos_ + 1 >= src_.size()) return SyntaxError("unterminated string", start);
          const char e = src_[pos_ + 1];
          if (e != '"' && e != '\\') {
            return SyntaxError("only \\\" and \\\\ are escapes in a string", pos_);
          }
          s.push_back(e);
          pos_ += 2;
          continue;
        }
        s.push_back(d);
        ++pos_;
      }
      ++pos_;
      if (s.size() > 1024) return SyntaxError("a string literal is at most 1024 bytes", start);
      tok_.kind = Token::Kind::kString;
      tok_.text = src_.substr(start, pos_ - start);
      tok_.str = std::move(s);
      return absl::OkStatus();
    }
    if (!IsWordChar(c)) {
      return SyntaxError(absl::StrCat("unexpected character '", std::string(1, c), "'"), start);
    }
    while (pos_ < src_.size() && IsWordChar(src_[pos_])) ++pos_;
    tok_.kind = Token::Kind::kWord;
    tok_.text = src_.substr(start, pos_ - start);
    return absl::OkStatus();
  }

  bool IsWord(absl::string_view w) const {
    return tok_.kind == Token::Kind::kWord && tok_.text == w;
  }

  absl::Status Expect(Token::Kind kind, absl::string_view what) {
    if (tok_.kind != kind) {
      return SyntaxError(absl::StrCat("expected ", what, ", found ", Describe(tok_), KeywordHint()),
                         tok_.position);
    }
    return Advance();
  }

  using NodeOr = absl::StatusOr<RuleNode>;

  NodeOr ParseOr(int depth) {
    return ParseBinary("OR", RuleNode::Kind::kOr, depth, &Parser::ParseAnd);
  }
  NodeOr ParseAnd(int depth) {
    return ParseBinary("AND", RuleNode::Kind::kAnd, depth, &Parser::ParseFactor);
  }

  NodeOr ParseBinary(absl::string_view op, RuleNode::Kind kind, int depth,
                     NodeOr (Parser::*sub)(int)) {
    NodeOr first = (this->*sub)(depth);
    if (!first.ok() || !IsWord(op)) return first;
    RuleNode node;
    node.kind = kind;
    node.position = tok_.position;
    node.children.push_back(*std::move(first));
    while (IsWord(op)) {
      if (absl::Status s = Advance(); !s.ok()) return s;
      NodeOr next = (this->*sub)(depth);
      if (!next.ok()) return next;
      node.children.push_back(*std::move(next));
    }
    return node;
  }

  NodeOr ParseFactor(int depth) {
    if (depth > kMaxRuleDepth) return SyntaxError("rule nested too deeply", tok_.position);
    if (IsWord("NOT")) {
      RuleNode node;
      node.kind = RuleNode::Kind::kNot;
      node.position = tok_.position;
      if (absl::Status s = Advance(); !s.ok()) return s;
      NodeOr operand = ParseFactor(depth + 1);
      if (!operand.ok()) return operand;
      node.children.push_back(*std::move(operand));
      return node;
    }
    if (tok_.kind == Token::Kind::kOpen) {
      const size_t open = tok_.position;
      if (absl::Status s = Advance(); !s.ok()) return s;
      NodeOr inner = ParseOr(depth + 1);
      if (!inner.ok()) return inner;
      if (tok_.kind != Token::Kind::kClose) {
        return SyntaxError(absl::StrCat("expected ')' to close the '(' at byte ", open, ", found ",
                                        Describe(tok_), KeywordHint()),
                           tok_.position);
      }
      if (absl::Status s = Advance(); !s.ok()) return s;
      return inner;
    }
    absl::StatusOr<Leaf> leaf = ParseLeaf();
    if (!leaf.ok()) return leaf.status();
    if (out_.leaves.size() >= kMaxRuleLeaves) {
      return SyntaxError(absl::StrCat("a rule has at most ", kMaxRuleLeaves, " conditions"),
                         leaf->position);
    }
    RuleNode node;
    node.kind = RuleNode::Kind::kLeaf;
    node.position = leaf->position;
    node.leaf = static_cast<int>(out_.leaves.size());
    out_.leaves.push_back(*std::move(leaf));
    return node;
  }

  absl::StatusOr<Leaf> ParseLeaf() {
    Leaf leaf;
    leaf.position = tok_.position;
    if (tok_.kind != Token::Kind::kWord) {
      return SyntaxError(absl::StrCat("expected a condition, NOT or '(', found ", Describe(tok_)),
                         tok_.position);
    }
    const absl::string_view word = tok_.text;
    if (word == "count" || word == "sum" || word == "did") return ParseAggregate(std::move(leaf));
    if (word == "has_trait" || word == "in_segment") {
      const bool has = word == "has_trait";
      if (absl::Status s = Advance(); !s.ok()) return s;
      if (absl::Status s = Expect(Token::Kind::kOpen, "'('"); !s.ok()) return s;
      const size_t at = tok_.position;
      std::string name;
      if (tok_.kind == Token::Kind::kString) {
        name = tok_.str;
      } else if (tok_.kind == Token::Kind::kWord) {
        name = std::string(tok_.text);
      } else {
        return SyntaxError(absl::StrCat("expected ", has ? "a trait key" : "a segment name",
                                        ", found ", Describe(tok_)),
                           at);
      }
      if (has) {
        if (absl::Status s = CheckKey(name, at); !s.ok()) return s;
        leaf.kind = Leaf::Kind::kHasTrait;
        leaf.key = std::move(name);
      } else {
        if (absl::Status s = ValidateSegmentNameAt(name, at); !s.ok()) return s;
        leaf.kind = Leaf::Kind::kInSegment;
        leaf.segment = std::move(name);
      }
      if (absl::Status s = Advance(); !s.ok()) return s;
      if (absl::Status s = Expect(Token::Kind::kClose, "')'"); !s.ok()) return s;
      return leaf;
    }
    if (absl::StartsWith(word, "trait.")) {
      leaf.key = std::string(word.substr(6));
      if (absl::Status s = CheckKey(leaf.key, tok_.position + 6); !s.ok()) return s;
      if (absl::Status s = Advance(); !s.ok()) return s;
      if (IsWord("IN")) {
        leaf.kind = Leaf::Kind::kTraitIn;
        if (absl::Status s = Advance(); !s.ok()) return s;
        if (absl::Status s = Expect(Token::Kind::kOpen, "'(' after IN"); !s.ok()) return s;
        while (true) {
          absl::StatusOr<Value> v = ParseLiteral();
          if (!v.ok()) return v.status();
          if (leaf.in.size() >= kMaxInList) {
            return SyntaxError(absl::StrCat("an IN list has at most ", kMaxInList, " values"),
                               tok_.position);
          }
          leaf.in.push_back(*std::move(v));
          if (tok_.kind == Token::Kind::kComma) {
            if (absl::Status s = Advance(); !s.ok()) return s;
            continue;
          }
          if (absl::Status s = Expect(Token::Kind::kClose, "',' or ')'"); !s.ok()) return s;
          break;
        }
        return leaf;
      }
      leaf.kind = Leaf::Kind::kTraitCmp;
      absl::StatusOr<std::pair<Cmp, Value>> c = ParseComparison();
      if (!c.ok()) return c.status();
      leaf.cmp = c->first;
      leaf.literal = std::move(c->second);
      return leaf;
    }
    std::string hint;
    if (absl::StartsWith(word, "properties.")) {
      hint =
          "; properties are read inside count(), sum() and did(): count(TYPE WHERE "
          "properties.KEY = …)";
    } else if (absl::StartsWith(absl::AsciiStrToLower(word), "trait.") ||
               absl::StartsWith(absl::AsciiStrToLower(word), "traits.")) {
      hint = "; write trait.KEY";
    } else {
      hint = KeywordHint();
    }
    return SyntaxError(absl::StrCat("expected count(…), sum(…), did(…), trait.KEY, has_trait(…), "
                                    "in_segment(…), NOT or '(', found ",
                                    Describe(tok_), hint),
                       tok_.position);
  }

  // count( events [, window] ) cmp NUMBER | sum( events , properties.KEY [, window] ) cmp NUMBER
  // | did( events [, window] ).
  absl::StatusOr<Leaf> ParseAggregate(Leaf leaf) {
    const absl::string_view fn = tok_.text;
    const bool is_sum = fn == "sum", is_did = fn == "did";
    leaf.kind = is_sum ? Leaf::Kind::kSum : Leaf::Kind::kCount;
    if (absl::Status s = Advance(); !s.ok()) return s;
    if (absl::Status s = Expect(Token::Kind::kOpen, "'('"); !s.ok()) return s;
    if (tok_.kind != Token::Kind::kWord) {
      return SyntaxError(absl::StrCat("expected an event type, found ", Describe(tok_)),
                         tok_.position);
    }
    leaf.events.type = std::string(tok_.text);
    if (absl::Status s = ValidateSegmentNameAt(leaf.events.type, tok_.position, "event type");
        !s.ok()) {
      return s;
    }
    if (absl::Status s = Advance(); !s.ok()) return s;
    if (IsWord("WHERE")) {
      do {
        if (absl::Status s = Advance(); !s.ok()) return s;
        if (leaf.events.where.size() >= kMaxWherePredicates) {
          return SyntaxError(
              absl::StrCat("WHERE takes at most ", kMaxWherePredicates, " conditions"),
              tok_.position);
        }
        absl::StatusOr<std::string> key = ParsePropertyKey();
        if (!key.ok()) return key.status();
        absl::StatusOr<std::pair<Cmp, Value>> c = ParseComparison();
        if (!c.ok()) return c.status();
        leaf.events.where.push_back({*std::move(key), c->first, std::move(c->second)});
      } while (IsWord("AND"));
    }
    if (is_sum) {
      if (absl::Status s = Expect(Token::Kind::kComma, "',' and the property to sum"); !s.ok()) {
        return s;
      }
      absl::StatusOr<std::string> key = ParsePropertyKey();
      if (!key.ok()) return key.status();
      leaf.property = *std::move(key);
    }
    if (tok_.kind == Token::Kind::kComma) {
      if (absl::Status s = Advance(); !s.ok()) return s;
      absl::StatusOr<TimeMs> w = ParseWindow();
      if (!w.ok()) return w.status();
      leaf.window_ms = *w;
    }
    if (absl::Status s = Expect(Token::Kind::kClose, "')'"); !s.ok()) return s;
    if (is_did) {
      leaf.cmp = Cmp::kGe;
      leaf.number = 1;
      return leaf;
    }
    size_t at = 0;
    absl::StatusOr<std::pair<Cmp, Value>> c = ParseComparison(&at);
    if (!c.ok()) return c.status();
    const double* n = std::get_if<double>(&c->second);
    if (n == nullptr) {
      return SyntaxError(absl::StrCat(fn, "(…) is a number: compare it with a number"), at);
    }
    if (!is_sum && *n > kMaxCountThreshold) {
      return SyntaxError(absl::StrCat("count(…) compares with numbers up to ", kMaxCountThreshold,
                                      ": larger thresholds are not kept in real time"),
                         at);
    }
    leaf.cmp = c->first;
    leaf.number = *n;
    return leaf;
  }

  absl::StatusOr<std::string> ParsePropertyKey() {
    if (tok_.kind != Token::Kind::kWord || !absl::StartsWith(tok_.text, "properties.")) {
      return SyntaxError(absl::StrCat("expected properties.KEY, found ", Describe(tok_)),
                         tok_.position);
    }
    std::string key(tok_.text.substr(11));
    if (absl::Status s = CheckKey(key, tok_.position + 11); !s.ok()) return s;
    if (absl::Status s = Advance(); !s.ok()) return s;
    return key;
  }

  absl::StatusOr<TimeMs> ParseWindow() {
    const size_t at = tok_.position;
    const absl::string_view w = tok_.kind == Token::Kind::kWord ? tok_.text : "";
    TimeMs unit = 0;
    if (!w.empty()) {
      switch (w.back()) {
        case 's':
          unit = 1000;
          break;
        case 'm':
          unit = 60 * 1000;
          break;
        case 'h':
          unit = 3600 * 1000;
          break;
        case 'd':
          unit = 24 * 3600 * 1000;
          break;
      }
    }
    uint64_t n = 0;
    const absl::string_view digits = w.empty() ? w : w.substr(0, w.size() - 1);
    const bool all_digits = !digits.empty() && digits.size() <= 9 &&
                            std::all_of(digits.begin(), digits.end(), [](char c) {
                              return absl::ascii_isdigit(static_cast<unsigned char>(c));
                            });
    if (unit == 0 || !all_digits || !absl::SimpleAtoi(digits, &n)) {
      return SyntaxError(
          absl::StrCat("expected a window such as 30s, 15m, 4h or 7d, found ", Describe(tok_)), at);
    }
    const TimeMs ms = static_cast<TimeMs>(n) * unit;
    if (ms < 1000 || ms > limits_.max_window_ms) {
      return SyntaxError(absl::StrCat("a window is from 1s to the event retention (",
                                      limits_.max_window_ms / 1000, "s)"),
                         at);
    }
    if (absl::Status s = Advance(); !s.ok()) return s;
    return ms;
  }

  // *literal_at: where the literal starts.
  absl::StatusOr<std::pair<Cmp, Value>> ParseComparison(size_t* literal_at = nullptr) {
    if (tok_.kind != Token::Kind::kCmp) {
      return SyntaxError(absl::StrCat("expected a comparison (=, !=, <, <=, >, >=), found ",
                                      Describe(tok_), KeywordHint()),
                         tok_.position);
    }
    const Cmp cmp = tok_.cmp;
    if (absl::Status s = Advance(); !s.ok()) return s;
    const size_t at = tok_.position;
    if (literal_at != nullptr) *literal_at = at;
    absl::StatusOr<Value> v = ParseLiteral();
    if (!v.ok()) return v.status();
    if (std::holds_alternative<bool>(*v) && cmp != Cmp::kEq && cmp != Cmp::kNe) {
      return SyntaxError("true and false compare only with = and !=", at);
    }
    return std::make_pair(cmp, *std::move(v));
  }

  absl::StatusOr<Value> ParseLiteral() {
    const size_t at = tok_.position;
    Value v;
    if (tok_.kind == Token::Kind::kString) {
      v = tok_.str;
    } else if (IsWord("true") || IsWord("false")) {
      v = tok_.text == "true";
    } else if (double d; tok_.kind == Token::Kind::kWord && ParseNumber(tok_.text, &d)) {
      v = d;
    } else {
      return SyntaxError(
          absl::StrCat("expected a \"string\", a number, true or false, found ", Describe(tok_)),
          at);
    }
    if (absl::Status s = Advance(); !s.ok()) return s;
    return v;
  }

  absl::Status CheckKey(absl::string_view key, size_t at) {
    if (key.empty()) return SyntaxError("expected a key after the '.'", at);
    if (key.size() > kMaxKeyBytes) {
      return SyntaxError(absl::StrCat("a key is at most ", kMaxKeyBytes, " bytes"), at);
    }
    return absl::OkStatus();
  }

  absl::Status ValidateSegmentNameAt(absl::string_view name, size_t at,
                                     absl::string_view what = "segment name") {
    const bool ok = !name.empty() && name.size() <= 128 &&
                    absl::ascii_isalnum(static_cast<unsigned char>(name[0])) &&
                    std::all_of(name.begin(), name.end(), [](char c) {
                      return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' ||
                             c == '.' || c == ':' || c == '-';
                    });
    if (!ok) {
      return SyntaxError(absl::StrCat("not a valid ", what,
                                      " (letters, digits and _ . : -, starting with a letter or "
                                      "digit, at most 128 bytes)"),
                         at);
    }
    return absl::OkStatus();
  }

  absl::string_view src_;
  RuleLimits limits_;
  size_t pos_ = 0;
  Token tok_;
  ParsedRule out_;
};

}  // namespace

absl::StatusOr<ParsedRule> ParseRule(absl::string_view source, const RuleLimits& limits) {
  return Parser(source, limits).Parse();
}

}  // namespace segd::engine::rules
