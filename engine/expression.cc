#include "engine/expression.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "engine/errors.h"

namespace segd::engine {
namespace {

bool IsNameChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == ':' || c == '-';
}

struct Token {
  enum class Kind { kName, kAnd, kOr, kXor, kNot, kOpen, kClose, kEnd };
  Kind kind;
  absl::string_view text;
  size_t position;
};

const char* Describe(Token::Kind kind) {
  switch (kind) {
    case Token::Kind::kName:
      return "a segment name";
    case Token::Kind::kAnd:
      return "AND";
    case Token::Kind::kOr:
      return "OR";
    case Token::Kind::kXor:
      return "XOR";
    case Token::Kind::kNot:
      return "NOT";
    case Token::Kind::kOpen:
      return "'('";
    case Token::Kind::kClose:
      return "')'";
    case Token::Kind::kEnd:
      return "the end";
  }
  return "?";
}

class Parser {
 public:
  explicit Parser(absl::string_view source) : src_(source) {}

  absl::StatusOr<std::unique_ptr<Expr>> Parse() {
    if (absl::Status s = Advance(); !s.ok()) return s;
    auto expr = ParseOr(0);
    if (!expr.ok()) return expr.status();
    if (tok_.kind != Token::Kind::kEnd) {
      return SyntaxError(absl::StrCat("expected an operator or the end, found ",
                                      Describe(tok_.kind), LowerCaseOperatorHint()),
                         tok_.position);
    }
    return expr;
  }

 private:
  // "; operators are upper case: write AND" when the token at fault, or the name before it,
  // is an operator written in lower case ("a and b", "not a").
  std::string LowerCaseOperatorHint() const {
    for (absl::string_view word : {tok_.text, previous_name_}) {
      const std::string upper = absl::AsciiStrToUpper(word);
      if (upper == "AND" || upper == "OR" || upper == "XOR" || upper == "NOT") {
        return absl::StrCat("; operators are upper case: write ", upper, ", not ", word);
      }
    }
    return "";
  }

  absl::Status Advance() {
    while (pos_ < src_.size() &&
           (src_[pos_] == ' ' || src_[pos_] == '\t' || src_[pos_] == '\n' || src_[pos_] == '\r')) {
      ++pos_;
    }
    size_t start = pos_;
    if (pos_ == src_.size()) {
      tok_ = {Token::Kind::kEnd, {}, start};
      return absl::OkStatus();
    }
    char c = src_[pos_];
    if (c == '(' || c == ')') {
      ++pos_;
      tok_ = {c == '(' ? Token::Kind::kOpen : Token::Kind::kClose, src_.substr(start, 1), start};
      return absl::OkStatus();
    }
    if (c == '"') {
      size_t end = src_.find('"', pos_ + 1);
      if (end == absl::string_view::npos) return SyntaxError("unterminated quoted name", start);
      absl::string_view name = src_.substr(pos_ + 1, end - pos_ - 1);
      if (name.empty()) return SyntaxError("empty quoted name", start);
      for (size_t i = 0; i < name.size(); ++i) {
        if (!IsNameChar(name[i])) {
          return SyntaxError("character not allowed in a segment name", pos_ + 1 + i);
        }
      }
      pos_ = end + 1;
      tok_ = {Token::Kind::kName, name, start};
      return absl::OkStatus();
    }
    if (!IsNameChar(c))
      return SyntaxError(absl::StrCat("unexpected character '", std::string(1, c), "'"), start);
    while (pos_ < src_.size() && IsNameChar(src_[pos_])) ++pos_;
    absl::string_view word = src_.substr(start, pos_ - start);
    Token::Kind kind = Token::Kind::kName;
    if (word == "AND") kind = Token::Kind::kAnd;
    if (word == "OR") kind = Token::Kind::kOr;
    if (word == "XOR") kind = Token::Kind::kXor;
    if (word == "NOT") kind = Token::Kind::kNot;
    tok_ = {kind, word, start};
    return absl::OkStatus();
  }

  using Result = absl::StatusOr<std::unique_ptr<Expr>>;

  // One binary precedence level: operand (op operand)*.
  template <typename Sub>
  Result ParseBinary(Token::Kind op, Expr::Kind kind, int depth, Sub sub) {
    Result left = (this->*sub)(depth);
    if (!left.ok()) return left;
    while (tok_.kind == op) {
      size_t position = tok_.position;
      if (absl::Status s = Advance(); !s.ok()) return s;
      Result right = (this->*sub)(depth);
      if (!right.ok()) return right;
      auto node = std::make_unique<Expr>();
      node->kind = kind;
      node->position = position;
      node->left = std::move(*left);
      node->right = std::move(*right);
      left = std::move(node);
    }
    return left;
  }

  Result ParseOr(int depth) {
    return ParseBinary(Token::Kind::kOr, Expr::Kind::kOr, depth, &Parser::ParseXor);
  }
  Result ParseXor(int depth) {
    return ParseBinary(Token::Kind::kXor, Expr::Kind::kXor, depth, &Parser::ParseAnd);
  }
  Result ParseAnd(int depth) {
    return ParseBinary(Token::Kind::kAnd, Expr::Kind::kAnd, depth, &Parser::ParseNot);
  }

  Result ParseNot(int depth) {
    if (depth > kMaxExpressionDepth) {
      return SyntaxError("expression nested too deeply", tok_.position);
    }
    if (tok_.kind == Token::Kind::kNot) {
      size_t position = tok_.position;
      if (absl::Status s = Advance(); !s.ok()) return s;
      Result operand = ParseNot(depth + 1);
      if (!operand.ok()) return operand;
      auto node = std::make_unique<Expr>();
      node->kind = Expr::Kind::kNot;
      node->position = position;
      node->left = std::move(*operand);
      return node;
    }
    return ParsePrimary(depth);
  }

  Result ParsePrimary(int depth) {
    if (tok_.kind == Token::Kind::kOpen) {
      size_t open = tok_.position;
      if (absl::Status s = Advance(); !s.ok()) return s;
      Result inner = ParseOr(depth + 1);
      if (!inner.ok()) return inner;
      if (tok_.kind != Token::Kind::kClose) {
        return SyntaxError(absl::StrCat("expected ')' to close the '(' at byte ", open, ", found ",
                                        Describe(tok_.kind)),
                           tok_.position);
      }
      if (absl::Status s = Advance(); !s.ok()) return s;
      return inner;
    }
    if (tok_.kind == Token::Kind::kName) {
      if (tok_.text.size() > 128) return SyntaxError("segment name too long", tok_.position);
      previous_name_ = tok_.text;
      auto node = std::make_unique<Expr>();
      node->kind = Expr::Kind::kSegment;
      node->name = std::string(tok_.text);
      node->position = tok_.position;
      if (absl::Status s = Advance(); !s.ok()) return s;
      return node;
    }
    return SyntaxError(absl::StrCat("expected a segment name, NOT or '(', found ",
                                    Describe(tok_.kind), LowerCaseOperatorHint()),
                       tok_.position);
  }

  absl::string_view src_;
  size_t pos_ = 0;
  Token tok_{Token::Kind::kEnd, {}, 0};
  absl::string_view previous_name_;  // the last segment name read
};

void CollectNames(const Expr& expr, std::vector<std::string>* names) {
  if (expr.kind == Expr::Kind::kSegment) {
    if (std::find(names->begin(), names->end(), expr.name) == names->end()) {
      names->push_back(expr.name);
    }
    return;
  }
  if (expr.left) CollectNames(*expr.left, names);
  if (expr.right) CollectNames(*expr.right, names);
}

const Roaring& EmptyBitmap() {
  static const Roaring* empty = new Roaring();
  return *empty;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Expr>> ParseExpression(absl::string_view source) {
  if (source.size() > kMaxExpressionBytes) {
    return SyntaxError(absl::StrCat("expression longer than ", kMaxExpressionBytes, " bytes"),
                       kMaxExpressionBytes);
  }
  return Parser(source).Parse();
}

std::vector<std::string> SegmentNamesOf(const Expr& expr) {
  std::vector<std::string> names;
  CollectNames(expr, &names);
  return names;
}

CompiledExpr::CompiledExpr(const Expr& expr) {
  std::vector<std::string> names;
  root_ = Compile(expr, &names);
}

int CompiledExpr::Compile(const Expr& expr, std::vector<std::string>* names) {
  Node node{expr.kind};
  if (expr.kind == Expr::Kind::kSegment) {
    auto it = std::find(names->begin(), names->end(), expr.name);
    if (it == names->end()) it = names->insert(names->end(), expr.name);
    node.leaf = static_cast<int>(it - names->begin());
  } else {
    node.left = Compile(*expr.left, names);
    if (expr.right) node.right = Compile(*expr.right, names);
  }
  nodes_.push_back(node);
  return static_cast<int>(nodes_.size() - 1);
}

Roaring CompiledExpr::Eval(int index, LeafFn leaf, const Roaring& universe) const {
  const Node& node = nodes_[index];
  auto leaf_of = [&](int i) -> const Roaring& {
    const Roaring* r = leaf(nodes_[i].leaf);
    return r ? *r : EmptyBitmap();
  };
  switch (node.kind) {
    case Expr::Kind::kSegment:
      return leaf_of(index);
    case Expr::Kind::kNot:
      if (nodes_[node.left].kind == Expr::Kind::kSegment) return universe - leaf_of(node.left);
      return universe - Eval(node.left, leaf, universe);
    case Expr::Kind::kAnd: {
      // A AND NOT B = A - B, since every set here is within the universe.
      const Node& r = nodes_[node.right];
      if (r.kind == Expr::Kind::kNot) {
        Roaring left = Eval(node.left, leaf, universe);
        if (nodes_[r.left].kind == Expr::Kind::kSegment) {
          left -= leaf_of(r.left);
        } else {
          left -= Eval(r.left, leaf, universe);
        }
        return left;
      }
      Roaring left = Eval(node.left, leaf, universe);
      if (r.kind == Expr::Kind::kSegment) {
        left &= leaf_of(node.right);
      } else {
        left &= Eval(node.right, leaf, universe);
      }
      return left;
    }
    case Expr::Kind::kOr: {
      Roaring left = Eval(node.left, leaf, universe);
      left |= Eval(node.right, leaf, universe);
      return left;
    }
    case Expr::Kind::kXor: {
      Roaring left = Eval(node.left, leaf, universe);
      left ^= Eval(node.right, leaf, universe);
      return left;
    }
  }
  return Roaring();
}

Roaring CompiledExpr::Evaluate(LeafFn leaf, const Roaring& universe) const {
  return Eval(root_, leaf, universe);
}

uint64_t CompiledExpr::Count(LeafFn leaf, const Roaring& universe) const {
  const Node& node = nodes_[root_];
  auto is_leaf = [&](int i) { return nodes_[i].kind == Expr::Kind::kSegment; };
  auto leaf_of = [&](int i) -> const Roaring& {
    const Roaring* r = leaf(nodes_[i].leaf);
    return r ? *r : EmptyBitmap();
  };
  if (node.kind == Expr::Kind::kSegment) return leaf_of(root_).cardinality();
  if (node.kind == Expr::Kind::kNot && is_leaf(node.left)) {
    return universe.cardinality() - universe.and_cardinality(leaf_of(node.left));
  }
  if (node.kind != Expr::Kind::kNot && is_leaf(node.left)) {
    const Roaring& a = leaf_of(node.left);
    const Node& r = nodes_[node.right];
    if (is_leaf(node.right)) {
      const Roaring& b = leaf_of(node.right);
      if (node.kind == Expr::Kind::kAnd) return a.and_cardinality(b);
      if (node.kind == Expr::Kind::kOr) return a.or_cardinality(b);
      return a.xor_cardinality(b);
    }
    if (node.kind == Expr::Kind::kAnd && r.kind == Expr::Kind::kNot && is_leaf(r.left)) {
      return a.andnot_cardinality(leaf_of(r.left));
    }
  }
  return Evaluate(leaf, universe).cardinality();
}

}  // namespace segd::engine
