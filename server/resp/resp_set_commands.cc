// The set commands (SADD, SISMEMBER, SSCAN, SINTER, …) and segd's own (SEGD.*) over the
// engine. Keys are segments, members are user ids; docs/resp.md states each reply.

#include <algorithm>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/expression.h"
#include "server/resp/resp_context.h"

namespace segd::server::resp {
namespace {

using Context = RespCommands::Context;

// Whether `arg` equals the upper-case `word` in any case.
bool Is(absl::string_view arg, absl::string_view word) { return absl::EqualsIgnoreCase(arg, word); }

// A TTL argument (seconds, >= 1).
std::optional<int64_t> ParseTtl(absl::string_view arg) {
  return ParseInteger(arg, 1, std::numeric_limits<int64_t>::max());
}

// A write's engine error, with the missing segment explained for writes.
void FailWrite(Context& ctx, absl::string_view key, const absl::Status& status) {
  ctx.Error(WriteErrorMessage(key, status));
}

// Writes the members of a set answer, or refuses one larger than --resp-max-members.
bool WithinMemberCap(Context& ctx, uint64_t count, absl::string_view command) {
  if (count <= ctx.config.resp_max_members) return true;
  ctx.Error(absl::StrCat("ERR ", command, " would answer ", count,
                         " members, more than --resp-max-members (", ctx.config.resp_max_members,
                         "); page through a segment with SSCAN, or count with SCARD/SINTERCARD"));
  return false;
}

void WriteMembers(Context& ctx, const std::vector<std::string>& users) {
  ctx.out.Set(users.size());
  for (const std::string& u : users) ctx.out.Bulk(u);
}

// "a" AND "b" …, over segment names (which never need escaping inside quotes).
std::string Quoted(absl::string_view name) { return absl::StrCat("\"", name, "\""); }

enum class SetOp { kInter, kUnion, kDiff };

// The expression for a set operation over `keys`, Redis-style: a key that does not exist is an
// empty set. Returns false when the answer is the empty set whatever the rest holds.
bool BuildExpression(Context& ctx, SetOp op, absl::Span<const absl::string_view> keys,
                     std::string* expr) {
  std::vector<std::string> present;
  for (size_t i = 0; i < keys.size(); ++i) {
    const bool exists = ctx.Exists(keys[i]);
    if (!exists) {
      if (op == SetOp::kInter) return false;
      if (op == SetOp::kDiff && i == 0) return false;
      continue;
    }
    present.push_back(Quoted(keys[i]));
  }
  if (present.empty()) return false;
  switch (op) {
    case SetOp::kInter:
      *expr = absl::StrJoin(present, " AND ");
      break;
    case SetOp::kUnion:
      *expr = absl::StrJoin(present, " OR ");
      break;
    case SetOp::kDiff:
      *expr = present[0];
      if (present.size() > 1) {
        absl::StrAppend(expr, " AND NOT (",
                        absl::StrJoin(present.begin() + 1, present.end(), " OR "), ")");
      }
      break;
  }
  return true;
}

// SINTER, SUNION and SDIFF: the members, refused above --resp-max-members.
void SetOperation(Context& ctx, SetOp op, absl::string_view command) {
  const auto keys = ctx.args.subspan(1);
  for (absl::string_view key : keys) {
    if (!ctx.RequireSegment(key)) return;
  }
  std::string expr;
  if (!BuildExpression(ctx, op, keys, &expr)) {
    ctx.out.Set(0);
    return;
  }
  const uint32_t cap = ctx.config.resp_max_members;
  auto result = ctx.engine.Query(expr, cap);
  if (!result.ok()) return ctx.Fail(result.status());
  if (!WithinMemberCap(ctx, result->user_count, command)) return;
  WriteMembers(ctx, result->users);
}

}  // namespace

std::string WriteErrorMessage(absl::string_view key, const absl::Status& status) {
  const std::string code = engine::ErrorCodeOf(status);
  if (code == "segment_not_found") {
    // Segments are made on purpose: say how.
    return absl::StrCat("ERR segment '", key,
                        "' does not exist; segd creates segments deliberately: SEGD.CREATE ", key,
                        " (or POST /v1/segments), then add members");
  }
  if (code == "forbidden") return absl::StrCat("NOPERM ", status.message());
  return absl::StrCat("ERR ", status.message());
}

void SAdd(Context& ctx) {
  const absl::string_view key = ctx.args[1];
  if (!ctx.RequireSegment(key)) return;
  const auto members = ctx.args.subspan(2);
  if (members.size() == 1) {
    // One member, the common case: the path of POST /v1/users/{id}/segments, whose commits
    // concurrent writers share.
    engine::UserUpdate update;
    update.add.push_back({std::string(key), std::nullopt, std::nullopt});
    auto result = ctx.engine.UpdateUserSegments(members[0], update);
    if (!result.ok()) return FailWrite(ctx, key, result.status());
    ctx.out.Integer(static_cast<int64_t>(result->added.size()));
    return;
  }
  // Many members: one batch, all or nothing (a malformed id refuses the command).
  std::vector<engine::ImportItem> items;
  items.reserve(members.size());
  for (absl::string_view m : members) {
    if (absl::Status s = engine::Engine::ValidateUserId(m); !s.ok()) {
      return ctx.Error(absl::StrCat("ERR member ", engine::Quote(m), ": ", s.message()));
    }
    items.push_back({std::string(m), std::nullopt});
  }
  auto result = ctx.engine.Import(key, items, std::nullopt, engine::OpReason::kApi);
  if (!result.ok()) return FailWrite(ctx, key, result.status());
  if (!result->invalid.empty()) {
    // Only a state-dependent refusal gets here (the user dictionary is full); the valid
    // members were added.
    return ctx.Fail(result->invalid.front().second);
  }
  ctx.out.Integer(static_cast<int64_t>(result->added));
}

void SRem(Context& ctx) {
  const absl::string_view key = ctx.args[1];
  if (!ctx.RequireSegment(key)) return;
  if (!ctx.Exists(key)) {
    ctx.out.Integer(0);  // Redis: a missing key is an empty set
    return;
  }
  auto removed = ctx.engine.RemoveMembers(key, ctx.args.subspan(2));
  if (!removed.ok()) {
    if (engine::ErrorCodeOf(removed.status()) == "segment_not_found") {
      ctx.out.Integer(0);  // deleted meanwhile
      return;
    }
    return ctx.Fail(removed.status());
  }
  ctx.out.Integer(static_cast<int64_t>(*removed));
}

void SIsMember(Context& ctx) {
  const absl::string_view key = ctx.args[1];
  if (!ctx.RequireSegment(key)) return;
  auto segment = ctx.engine.FindSegment(key);
  bool member = false;
  if (segment) {
    if (auto user = ctx.engine.FindUser(ctx.args[2])) member = ctx.engine.Contains(*segment, *user);
  }
  ctx.out.Integer(member ? 1 : 0);
}

void SMIsMember(Context& ctx) {
  const absl::string_view key = ctx.args[1];
  if (!ctx.RequireSegment(key)) return;
  auto segment = ctx.engine.FindSegment(key);
  const auto members = ctx.args.subspan(2);
  ctx.out.Array(members.size());
  for (absl::string_view m : members) {
    bool member = false;
    if (segment) {
      if (auto user = ctx.engine.FindUser(m)) member = ctx.engine.Contains(*segment, *user);
    }
    ctx.out.Integer(member ? 1 : 0);
  }
}

void SCard(Context& ctx) {
  const absl::string_view key = ctx.args[1];
  if (!ctx.RequireSegment(key)) return;
  auto count = ctx.engine.Count(key);
  ctx.out.Integer(count.ok() ? static_cast<int64_t>(*count) : 0);
}

void SMembers(Context& ctx) {
  const absl::string_view key = ctx.args[1];
  if (!ctx.RequireSegment(key)) return;
  auto count = ctx.engine.Count(key);
  if (!count.ok()) {
    ctx.out.Set(0);
    return;
  }
  if (!WithinMemberCap(ctx, *count, "SMEMBERS")) return;
  // One more than the cap tells a segment that grew since the count.
  const uint32_t cap = ctx.config.resp_max_members;
  auto page = ctx.engine.ScanMembers(key, 0, cap + 1);
  if (!page.ok()) {
    ctx.out.Set(0);
    return;
  }
  if (!WithinMemberCap(ctx, page->users.size(), "SMEMBERS")) return;
  WriteMembers(ctx, page->users);
}

void SScan(Context& ctx) {
  const absl::string_view key = ctx.args[1];
  if (!ctx.RequireSegment(key)) return;
  auto cursor = ParseInteger(ctx.args[2], 0, std::numeric_limits<int64_t>::max());
  if (!cursor) return ctx.Error("ERR invalid cursor");
  std::optional<absl::string_view> match;
  int64_t count = 10;
  for (size_t i = 3; i < ctx.args.size(); i += 2) {
    if (i + 1 >= ctx.args.size()) return ctx.SyntaxError();
    if (Is(ctx.args[i], "MATCH")) {
      match = ctx.args[i + 1];
    } else if (Is(ctx.args[i], "COUNT")) {
      auto n = ParseInteger(ctx.args[i + 1], 1, std::numeric_limits<int64_t>::max());
      if (!n) return ctx.SyntaxError();
      count = std::min<int64_t>(*n, engine::Engine::kMaxPageLimit);
    } else {
      return ctx.SyntaxError();
    }
  }
  auto page =
      ctx.engine.ScanMembers(key, static_cast<uint64_t>(*cursor), static_cast<uint32_t>(count));
  ctx.out.Array(2);
  if (!page.ok()) {  // a missing segment is an empty set: the scan is over
    ctx.out.Bulk("0");
    ctx.out.Array(0);
    return;
  }
  ctx.out.Bulk(absl::StrCat(page->next));
  if (match) {
    std::erase_if(page->users, [&](const std::string& u) { return !RedisGlobMatches(*match, u); });
  }
  ctx.out.Array(page->users.size());
  for (const std::string& u : page->users) ctx.out.Bulk(u);
}

void SInterCard(Context& ctx) {
  auto numkeys = ParseInteger(ctx.args[1], 1, std::numeric_limits<int32_t>::max());
  if (!numkeys) return ctx.Error("ERR numkeys should be greater than 0");
  const size_t n = static_cast<size_t>(*numkeys);
  if (ctx.args.size() < 2 + n) {
    return ctx.Error("ERR Number of keys can't be greater than number of args");
  }
  uint64_t limit = 0;
  for (size_t i = 2 + n; i < ctx.args.size(); i += 2) {
    if (!Is(ctx.args[i], "LIMIT") || i + 1 >= ctx.args.size()) return ctx.SyntaxError();
    auto l = ParseInteger(ctx.args[i + 1], 0, std::numeric_limits<int64_t>::max());
    if (!l) return ctx.Error("ERR LIMIT can't be negative");
    limit = static_cast<uint64_t>(*l);
  }
  const auto keys = ctx.args.subspan(2, n);
  for (absl::string_view key : keys) {
    if (!ctx.RequireSegment(key)) return;
  }
  std::string expr;
  if (!BuildExpression(ctx, SetOp::kInter, keys, &expr)) {
    ctx.out.Integer(0);
    return;
  }
  auto result = ctx.engine.Query(expr, 0);
  if (!result.ok()) return ctx.Fail(result.status());
  uint64_t count = result->user_count;
  if (limit != 0) count = std::min(count, limit);
  ctx.out.Integer(static_cast<int64_t>(count));
}

void SInter(Context& ctx) { SetOperation(ctx, SetOp::kInter, "SINTER"); }
void SUnion(Context& ctx) { SetOperation(ctx, SetOp::kUnion, "SUNION"); }
void SDiff(Context& ctx) { SetOperation(ctx, SetOp::kDiff, "SDIFF"); }

void Exists(Context& ctx) {
  int64_t n = 0;
  for (absl::string_view key : ctx.args.subspan(1)) {
    if (!ctx.RequireSegment(key)) return;
    if (ctx.Exists(key)) ++n;
  }
  ctx.out.Integer(n);
}

void Type(Context& ctx) {
  const absl::string_view key = ctx.args[1];
  if (!ctx.RequireSegment(key)) return;
  ctx.out.Simple(ctx.Exists(key) ? "set" : "none");
}

void DbSize(Context& ctx) {
  int64_t n = 0;
  for (const engine::SegmentInfo& info : ctx.engine.ListSegments(false)) {
    if (ctx.CanSee(info.meta.name)) ++n;
  }
  ctx.out.Integer(n);
}

void SegdAdd(Context& ctx) {
  const absl::string_view key = ctx.args[1];
  if (!ctx.RequireSegment(key)) return;
  engine::MembershipAdd add{std::string(key), std::nullopt, std::nullopt};
  if (ctx.args.size() != 3) {
    if (ctx.args.size() != 5 || !Is(ctx.args[3], "TTL")) return ctx.SyntaxError();
    add.ttl_seconds = ParseTtl(ctx.args[4]);
    if (!add.ttl_seconds) return ctx.Error("ERR TTL must be a whole number of seconds, at least 1");
  }
  engine::UserUpdate update;
  update.add.push_back(std::move(add));
  auto result = ctx.engine.UpdateUserSegments(ctx.args[2], update);
  if (!result.ok()) return FailWrite(ctx, key, result.status());
  ctx.out.Integer(result->added.empty() ? 0 : 1);
}

void SegdCreate(Context& ctx) {
  const absl::string_view key = ctx.args[1];
  if (!ctx.RequireSegment(key)) return;
  engine::SegmentSpec spec;
  spec.name = std::string(key);
  if (ctx.args.size() != 2) {
    if (ctx.args.size() != 4 || !Is(ctx.args[2], "TTL")) return ctx.SyntaxError();
    spec.ttl_seconds = ParseTtl(ctx.args[3]);
    if (!spec.ttl_seconds)
      return ctx.Error("ERR TTL must be a whole number of seconds, at least 1");
  }
  auto created = ctx.engine.CreateSegment(spec);
  if (!created.ok()) return ctx.Fail(created.status());
  ctx.out.Simple("OK");
}

void SegdUserSegments(Context& ctx) {
  std::vector<engine::UserSegment> segments = ctx.engine.UserSegments(ctx.args[1]);
  std::erase_if(segments, [&](const engine::UserSegment& m) { return !ctx.CanSee(m.segment); });
  ctx.out.Set(segments.size());
  for (const engine::UserSegment& m : segments) ctx.out.Bulk(m.segment);
}

void SegdQuery(Context& ctx) {
  const absl::string_view expr = ctx.args[1];
  int64_t limit = 0;
  if (ctx.args.size() != 2) {
    if (ctx.args.size() != 4 || !Is(ctx.args[2], "LIMIT")) return ctx.SyntaxError();
    auto l = ParseInteger(
        ctx.args[3], 0,
        std::min<int64_t>(engine::Engine::kMaxQueryLimit, ctx.config.resp_max_members));
    if (!l) {
      return ctx.Error(absl::StrCat(
          "ERR LIMIT must be 0-",
          std::min<int64_t>(engine::Engine::kMaxQueryLimit, ctx.config.resp_max_members)));
    }
    limit = *l;
  }
  if (ctx.caller != nullptr && !ctx.caller->Unscoped()) {
    // (A malformed expression is left for the engine to explain.)
    if (auto parsed = engine::ParseExpression(expr); parsed.ok()) {
      for (const std::string& name : engine::SegmentNamesOf(**parsed)) {
        if (!ctx.RequireSegment(name)) return;
      }
    }
  }
  auto result = ctx.engine.Query(expr, static_cast<uint32_t>(limit));
  if (!result.ok()) return ctx.Fail(result.status());
  ctx.out.Map(2);
  ctx.out.Bulk("user_count");
  ctx.out.Integer(static_cast<int64_t>(result->user_count));
  ctx.out.Bulk("users");
  ctx.out.Array(result->users.size());
  for (const std::string& u : result->users) ctx.out.Bulk(u);
}

}  // namespace segd::server::resp
