// Engine::RunGathered: the single-user mutations of many calls as few log batches, with the
// same results and state as running them one by one.

#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/engine.h"
#include "gtest/gtest.h"
#include "tests/testutil/recording_sink.h"

namespace segd::engine {
namespace {

// One random call: a user's adds and removes, a registration or a deletion.
struct Call {
  enum Kind { kUpdate, kRegister, kDelete, kCreateSegment } kind;
  std::string user;
  UserUpdate update;
};

std::vector<Call> RandomCalls(std::mt19937& rng, int n) {
  std::vector<Call> calls;
  const char* segments[] = {"a", "b", "c", "gone"};
  for (int i = 0; i < n; ++i) {
    Call c{Call::kUpdate, absl::StrCat("u", rng() % 12), {}};
    const unsigned pick = rng() % 20;
    if (pick == 0) {
      c.kind = Call::kRegister;
    } else if (pick == 1) {
      c.kind = Call::kDelete;
    } else if (pick == 2) {
      c.kind = Call::kCreateSegment;  // not keyed: ends the open batch
      c.user = absl::StrCat("s", i);
    } else {
      c.update.add.push_back({segments[rng() % 4]});
      if (rng() % 3 == 0) c.update.remove.push_back(segments[rng() % 3]);
    }
    calls.push_back(std::move(c));
  }
  return calls;
}

// The answer of a call, as text, so that both runs compare exactly.
std::string RunCall(Engine& engine, const Call& c) {
  switch (c.kind) {
    case Call::kRegister: {
      auto r = engine.RegisterUser(c.user);
      return r.ok() ? absl::StrCat("registered ", *r) : std::string(r.status().message());
    }
    case Call::kDelete: {
      auto r = engine.DeleteUser(c.user);
      return r.ok() ? absl::StrCat("deleted ", r->size()) : std::string(r.status().message());
    }
    case Call::kCreateSegment: {
      auto r = engine.CreateSegment({.name = c.user});
      return r.ok() ? "created" : std::string(r.status().message());
    }
    case Call::kUpdate: {
      auto r = engine.UpdateUserSegments(c.user, c.update);
      if (!r.ok()) return std::string(r.status().message());
      return absl::StrCat("+", r->added.size(), " ~", r->updated.size(), " -", r->removed.size());
    }
  }
  return "";
}

std::map<std::string, std::vector<std::string>> State(const Engine& engine) {
  std::map<std::string, std::vector<std::string>> state;
  for (int u = 0; u < 12; ++u) {
    std::string user = absl::StrCat("u", u);
    for (const auto& m : engine.UserSegments(user)) state[user].emplace_back(m.segment);
  }
  return state;
}

TEST(EngineGatheredTest, SameAnswersAndStateAsOneByOneInFewerBatches) {
  std::mt19937 rng(11);
  for (int round = 0; round < 30; ++round) {
    std::vector<Call> calls = RandomCalls(rng, 40);
    testutil::RecordingSink alone_sink, gathered_sink;
    Engine alone(EngineOptions{nullptr, &alone_sink, 1});
    Engine gathered(EngineOptions{nullptr, &gathered_sink, 1});
    for (Engine* e : {&alone, &gathered}) {
      for (const char* s : {"a", "b", "c"}) ASSERT_TRUE(e->CreateSegment({.name = s}).ok());
    }
    const size_t alone_before = alone_sink.accepted(), gathered_before = gathered_sink.accepted();
    std::vector<std::string> expected, got(calls.size());
    for (const Call& c : calls) expected.push_back(RunCall(alone, c));
    std::vector<absl::Status> outcomes =
        gathered.RunGathered(calls.size(), [&](size_t i) { got[i] = RunCall(gathered, calls[i]); });
    EXPECT_EQ(got, expected) << "round " << round;
    for (const absl::Status& s : outcomes) EXPECT_TRUE(s.ok()) << s;
    EXPECT_EQ(State(gathered), State(alone)) << "round " << round;
    EXPECT_EQ(gathered_sink.records().size(), alone_sink.records().size());
    // Batches end only at a repeated user (12 users here) or an unkeyed call: fewer batches.
    const size_t alone_batches = alone_sink.accepted() - alone_before;
    const size_t gathered_batches = gathered_sink.accepted() - gathered_before;
    EXPECT_LT(gathered_batches, alone_batches) << "round " << round;
  }
}

TEST(EngineGatheredTest, DistinctUsersShareOneBatch) {
  testutil::RecordingSink sink;
  Engine engine(EngineOptions{nullptr, &sink, 1});
  ASSERT_TRUE(engine.CreateSegment({.name = "a"}).ok());
  const size_t before = sink.accepted();
  std::vector<absl::Status> outcomes = engine.RunGathered(50, [&](size_t i) {
    ASSERT_TRUE(engine.UpdateUserSegments(absl::StrCat("user-", i), {.add = {{"a"}}}).ok());
  });
  EXPECT_EQ(sink.accepted() - before, 1u);
  EXPECT_EQ(outcomes.size(), 50u);
  EXPECT_EQ(*engine.Count("a"), 50u);
  // Repeats of a user close the batch before them.
  const size_t middle = sink.accepted();
  engine.RunGathered(4, [&](size_t i) {
    ASSERT_TRUE(engine.UpdateUserSegments(i % 2 ? "x" : "y", {.add = {{"a"}}}).ok());
  });
  EXPECT_EQ(sink.accepted() - middle, 2u);
}

// When the combined batch cannot be written, every call whose mutation joined it learns so,
// and memory holds none of it; calls that failed on their own keep their own error.
TEST(EngineGatheredTest, AFailedBatchFailsTheCallsInIt) {
  testutil::RecordingSink sink;
  Engine engine(EngineOptions{nullptr, &sink, 1});
  ASSERT_TRUE(engine.CreateSegment({.name = "a"}).ok());
  sink.set_fail(true);
  std::vector<bool> answered_ok(3);
  std::vector<absl::Status> outcomes = engine.RunGathered(3, [&](size_t i) {
    const char* segment = i == 1 ? "missing" : "a";
    answered_ok[i] = engine.UpdateUserSegments(absl::StrCat("u", i), {.add = {{segment}}}).ok();
  });
  EXPECT_TRUE(answered_ok[0]);
  EXPECT_FALSE(answered_ok[1]);
  EXPECT_FALSE(outcomes[0].ok());
  EXPECT_TRUE(outcomes[1].ok());  // it never joined the batch
  EXPECT_FALSE(outcomes[2].ok());
  EXPECT_EQ(*engine.Count("a"), 0u);
  EXPECT_TRUE(engine.UserSegments("u0").empty());
}

}  // namespace
}  // namespace segd::engine
