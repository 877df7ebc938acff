#pragma once

// Set-algebra expressions over segments: parsing into a tree and evaluation with Roaring.
//
// Grammar (operators upper case; precedence from tight to loose NOT, AND, XOR, OR; binary
// operators associate to the left):
//   expr    := xor_e ("OR" xor_e)*
//   xor_e   := and_e ("XOR" and_e)*
//   and_e   := not_e ("AND" not_e)*
//   not_e   := "NOT" not_e | primary
//   primary := "(" expr ")" | NAME | '"' NAME '"'
// NAME is a segment name; a name spelled like an operator is written in double quotes.
// `NOT X` means the registered users not in X.
//
// Thread safety: Expr is an immutable value after parsing; the functions are reentrant.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "roaring/roaring.hh"

namespace segd::engine {

struct Expr {
  enum class Kind { kSegment, kNot, kAnd, kOr, kXor };
  Kind kind = Kind::kSegment;
  std::string name;             // kSegment
  size_t position = 0;          // byte offset of the operand or operator in the source
  std::unique_ptr<Expr> left;   // operand of kNot; left of binary operators
  std::unique_ptr<Expr> right;  // right of binary operators
};

inline constexpr size_t kMaxExpressionBytes = 16 * 1024;
inline constexpr int kMaxExpressionDepth = 128;

// Parses `source`. Errors are bad_request with the 0-based byte offset of the problem as the
// position payload (errors.h: PositionOf).
absl::StatusOr<std::unique_ptr<Expr>> ParseExpression(absl::string_view source);

// Every distinct segment name in `expr`, in first-seen order.
std::vector<std::string> SegmentNamesOf(const Expr& expr);

// Resolves a segment leaf to its bitmap for the part of the universe being evaluated;
// nullptr means empty. The index is the leaf's position in SegmentNamesOf order.
using LeafFn = absl::FunctionRef<const Roaring*(size_t leaf_index)>;

// A tree whose leaves are resolved to indexes; built once per query and evaluated per shard.
class CompiledExpr {
 public:
  explicit CompiledExpr(const Expr& expr);
  CompiledExpr(const CompiledExpr&) = delete;
  CompiledExpr& operator=(const CompiledExpr&) = delete;

  // The set the expression denotes. `universe` is the set NOT is taken against. REQUIRES:
  // every leaf set is a subset of `universe`.
  Roaring Evaluate(LeafFn leaf, const Roaring& universe) const;
  // Its cardinality, without materialising a bitmap when the root is one operator over two
  // leaves (A AND B, A OR B, A XOR B, A AND NOT B) or a single leaf.
  uint64_t Count(LeafFn leaf, const Roaring& universe) const;

 private:
  struct Node {
    Expr::Kind kind;
    int leaf = -1;
    int left = -1;
    int right = -1;
  };
  int Compile(const Expr& expr, std::vector<std::string>* names);
  Roaring Eval(int node, LeafFn leaf, const Roaring& universe) const;

  std::vector<Node> nodes_;
  int root_ = -1;
};

}  // namespace segd::engine
