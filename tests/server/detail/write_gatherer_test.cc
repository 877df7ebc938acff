#include "server/detail/write_gatherer.h"

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/engine.h"
#include "gtest/gtest.h"
#include "tests/testutil/recording_sink.h"

namespace segd::server::detail {
namespace {

// A response whose handler adds `user` to `segment`, answering 200 or the engine's error.
std::unique_ptr<Response> AddAnswer(engine::Engine& engine, std::string user, std::string segment) {
  auto r = std::make_unique<Response>();
  r->blocking = [&engine, user, segment](Response& out) {
    auto result = engine.UpdateUserSegments(user, {.add = {{segment}}});
    if (!result.ok()) {
      ErrorResponse(result.status(), out);
      return;
    }
    out.body = "added " + user;
  };
  r->headers.emplace_back("Access-Control-Allow-Origin", "*");
  return r;
}

// What each test needs: a sink (fsync-like when `fsync`), an engine with segment "s" over it,
// an io_context and the gatherer under test.
struct GathererRig {
  explicit GathererRig(bool fsync)
      : sink(/*blocking_durability=*/fsync),
        engine(engine::EngineOptions{nullptr, &sink, 1}),
        gatherer(engine, ioc, /*wait_durable=*/fsync) {
    EXPECT_TRUE(engine.CreateSegment({.name = "s"}).ok());
  }
  testutil::RecordingSink sink;
  engine::Engine engine;
  boost::asio::io_context ioc;
  WriteGatherer gatherer;
};

TEST(WriteGatherer, WritesOfOnePassShareOneBatch) {
  GathererRig rig(/*fsync=*/false);
  const size_t before = rig.sink.accepted();
  std::vector<std::unique_ptr<Response>> answers(20);
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(rig.gatherer.Admit());
    rig.gatherer.Submit(AddAnswer(rig.engine, absl::StrCat("u", i), "s"),
                        [&answers, i](std::unique_ptr<Response> r) { answers[i] = std::move(r); });
  }
  rig.ioc.run();
  for (int i = 0; i < 20; ++i) {
    ASSERT_NE(answers[i], nullptr);
    EXPECT_EQ(answers[i]->status, 200u);
    EXPECT_EQ(answers[i]->body, absl::StrCat("added u", i));
  }
  EXPECT_EQ(rig.sink.accepted() - before, 1u);
  EXPECT_EQ(rig.gatherer.flushes(), 1u);
  EXPECT_EQ(*rig.engine.Count("s"), 20u);
}

// A batch the log refuses: the answers that were written as successes become the error, keep
// their CORS headers, and memory holds none of it; an answer that failed on its own stays.
TEST(WriteGatherer, AFailedBatchTurnsItsAnswersIntoTheError) {
  GathererRig rig(/*fsync=*/false);
  rig.sink.set_fail(true);
  std::vector<std::unique_ptr<Response>> answers(3);
  for (int i = 0; i < 3; ++i) {
    rig.gatherer.Submit(AddAnswer(rig.engine, absl::StrCat("u", i), i == 1 ? "missing" : "s"),
                        [&answers, i](std::unique_ptr<Response> r) { answers[i] = std::move(r); });
  }
  rig.ioc.run();
  EXPECT_EQ(answers[0]->status, 503u);
  EXPECT_EQ(answers[1]->status, 404u);
  EXPECT_EQ(answers[2]->status, 503u);
  EXPECT_NE(answers[0]->body.find("sink told to fail"), std::string::npos) << answers[0]->body;
  ASSERT_EQ(answers[0]->headers.size(), 1u);
  EXPECT_EQ(answers[0]->headers[0].first, "Access-Control-Allow-Origin");
  EXPECT_EQ(*rig.engine.Count("s"), 0u);
}

// Sparse writes run at once: a pass with fewer than kMinGroup writes switches gathering off
// (measured by the flush), and a pass with kMinGroup or more switches it back on (measured by
// the window of writes run at once).
TEST(WriteGatherer, GathersOnlyWhileWritesAreDense) {
  GathererRig rig(/*fsync=*/false);
  int done = 0;
  ASSERT_TRUE(rig.gatherer.Admit());
  rig.gatherer.Submit(AddAnswer(rig.engine, "alone", "s"),
                      [&](std::unique_ptr<Response>) { ++done; });
  rig.ioc.run();
  rig.ioc.restart();
  EXPECT_EQ(done, 1);
  // One write in that pass: the next ones run at once, and are counted.
  for (size_t i = 0; i < WriteGatherer::kMinGroup; ++i) EXPECT_FALSE(rig.gatherer.Admit());
  rig.ioc.run();  // the window ends
  rig.ioc.restart();
  EXPECT_TRUE(rig.gatherer.Admit());
  // Below kMinGroup in a window: stays off.
  rig.gatherer.Submit(AddAnswer(rig.engine, "again", "s"),
                      [&](std::unique_ptr<Response>) { ++done; });
  rig.ioc.run();
  rig.ioc.restart();
  EXPECT_FALSE(rig.gatherer.Admit());
  rig.ioc.run();
  rig.ioc.restart();
  EXPECT_FALSE(rig.gatherer.Admit());
  EXPECT_EQ(done, 2);
}

// Runs `ioc` until `done()` holds: answers under fsync arrive from the engine's durability
// thread, after the io_context may have run out of work.
template <typename Done>
void RunUntil(boost::asio::io_context& ioc, Done done) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!done() && std::chrono::steady_clock::now() < give_up) {
    ioc.restart();
    if (ioc.poll() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

// Under fsync every single-user write is gathered, and a group is answered only once the
// sink's durability wait has covered its batch (the engine's durability thread runs it; no
// answer comes from the flush itself).
TEST(WriteGatherer, UnderFsyncAnswersOnlyWhatIsDurable) {
  GathererRig rig(/*fsync=*/true);
  constexpr int kWrites = 30;
  std::vector<std::unique_ptr<Response>> answers(kWrites);
  std::vector<size_t> durable_when_answered(kWrites);
  int answered = 0;
  for (int i = 0; i < kWrites; ++i) {
    EXPECT_TRUE(rig.gatherer.Admit()) << "a sparse write is gathered too";
    rig.gatherer.Submit(AddAnswer(rig.engine, absl::StrCat("u", i), "s"),
                        [&, i](std::unique_ptr<Response> r) {
                          durable_when_answered[i] = rig.sink.durable();
                          answers[i] = std::move(r);
                          ++answered;
                        });
  }
  const size_t written_before = rig.sink.accepted();
  rig.ioc.restart();
  rig.ioc.poll_one();  // the flush: writes the group's batch, answers nothing yet
  EXPECT_EQ(answered, 0);
  EXPECT_EQ(rig.sink.accepted(), written_before + 1);
  RunUntil(rig.ioc, [&] { return answered == kWrites; });
  ASSERT_EQ(answered, kWrites);
  for (int i = 0; i < kWrites; ++i) {
    EXPECT_EQ(answers[i]->status, 200u);
    EXPECT_GE(durable_when_answered[i], written_before + 1) << "answered before the sync";
  }
  EXPECT_EQ(*rig.engine.Count("s"), size_t{kWrites});
}

// A failed sync turns the group's successes into its error (keeping CORS headers); an answer
// that failed on its own stays as it was.
TEST(WriteGatherer, UnderFsyncAFailedSyncFailsTheGroup) {
  GathererRig rig(/*fsync=*/true);
  rig.sink.set_durability_status(absl::DataLossError("fsync failed"));
  std::vector<std::unique_ptr<Response>> answers(3);
  int answered = 0;
  for (int i = 0; i < 3; ++i) {
    rig.gatherer.Submit(AddAnswer(rig.engine, absl::StrCat("u", i), i == 1 ? "missing" : "s"),
                        [&, i](std::unique_ptr<Response> r) {
                          answers[i] = std::move(r);
                          ++answered;
                        });
  }
  RunUntil(rig.ioc, [&] { return answered == 3; });
  ASSERT_EQ(answered, 3);
  EXPECT_EQ(answers[0]->status, 500u);
  EXPECT_NE(answers[0]->body.find("fsync failed"), std::string::npos) << answers[0]->body;
  ASSERT_EQ(answers[0]->headers.size(), 1u);
  EXPECT_EQ(answers[0]->headers[0].first, "Access-Control-Allow-Origin");
  EXPECT_EQ(answers[1]->status, 404u);
  EXPECT_EQ(answers[2]->status, 500u);
}

}  // namespace
}  // namespace segd::server::detail
