#include "server/detail/write_gatherer.h"

#include <boost/asio/io_context.hpp>
#include <memory>
#include <string>
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

TEST(WriteGatherer, WritesOfOnePassShareOneBatch) {
  testutil::RecordingSink sink;
  engine::Engine engine(engine::EngineOptions{nullptr, &sink, 1});
  ASSERT_TRUE(engine.CreateSegment({.name = "s"}).ok());
  boost::asio::io_context ioc;
  WriteGatherer gatherer(engine, ioc);
  const size_t before = sink.accepted();
  std::vector<std::unique_ptr<Response>> answers(20);
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(gatherer.Admit());
    gatherer.Submit(AddAnswer(engine, absl::StrCat("u", i), "s"),
                    [&answers, i](std::unique_ptr<Response> r) { answers[i] = std::move(r); });
  }
  ioc.run();
  for (int i = 0; i < 20; ++i) {
    ASSERT_NE(answers[i], nullptr);
    EXPECT_EQ(answers[i]->status, 200u);
    EXPECT_EQ(answers[i]->body, absl::StrCat("added u", i));
  }
  EXPECT_EQ(sink.accepted() - before, 1u);
  EXPECT_EQ(gatherer.flushes(), 1u);
  EXPECT_EQ(*engine.Count("s"), 20u);
}

// A batch the log refuses: the answers that were written as successes become the error, keep
// their CORS headers, and memory holds none of it; an answer that failed on its own stays.
TEST(WriteGatherer, AFailedBatchTurnsItsAnswersIntoTheError) {
  testutil::RecordingSink sink;
  engine::Engine engine(engine::EngineOptions{nullptr, &sink, 1});
  ASSERT_TRUE(engine.CreateSegment({.name = "s"}).ok());
  boost::asio::io_context ioc;
  WriteGatherer gatherer(engine, ioc);
  sink.set_fail(true);
  std::vector<std::unique_ptr<Response>> answers(3);
  for (int i = 0; i < 3; ++i) {
    gatherer.Submit(AddAnswer(engine, absl::StrCat("u", i), i == 1 ? "missing" : "s"),
                    [&answers, i](std::unique_ptr<Response> r) { answers[i] = std::move(r); });
  }
  ioc.run();
  EXPECT_EQ(answers[0]->status, 503u);
  EXPECT_EQ(answers[1]->status, 404u);
  EXPECT_EQ(answers[2]->status, 503u);
  EXPECT_NE(answers[0]->body.find("sink told to fail"), std::string::npos) << answers[0]->body;
  ASSERT_EQ(answers[0]->headers.size(), 1u);
  EXPECT_EQ(answers[0]->headers[0].first, "Access-Control-Allow-Origin");
  EXPECT_EQ(*engine.Count("s"), 0u);
}

// Sparse writes run at once: a pass with fewer than kMinGroup writes switches gathering off
// (measured by the flush), and a pass with kMinGroup or more switches it back on (measured by
// the window of writes run at once).
TEST(WriteGatherer, GathersOnlyWhileWritesAreDense) {
  testutil::RecordingSink sink;
  engine::Engine engine(engine::EngineOptions{nullptr, &sink, 1});
  ASSERT_TRUE(engine.CreateSegment({.name = "s"}).ok());
  boost::asio::io_context ioc;
  WriteGatherer gatherer(engine, ioc);
  int done = 0;
  ASSERT_TRUE(gatherer.Admit());
  gatherer.Submit(AddAnswer(engine, "alone", "s"), [&](std::unique_ptr<Response>) { ++done; });
  ioc.run();
  ioc.restart();
  EXPECT_EQ(done, 1);
  // One write in that pass: the next ones run at once, and are counted.
  for (size_t i = 0; i < WriteGatherer::kMinGroup; ++i) EXPECT_FALSE(gatherer.Admit());
  ioc.run();  // the window ends
  ioc.restart();
  EXPECT_TRUE(gatherer.Admit());
  // Below kMinGroup in a window: stays off.
  gatherer.Submit(AddAnswer(engine, "again", "s"), [&](std::unique_ptr<Response>) { ++done; });
  ioc.run();
  ioc.restart();
  EXPECT_FALSE(gatherer.Admit());
  ioc.run();
  ioc.restart();
  EXPECT_FALSE(gatherer.Admit());
  EXPECT_EQ(done, 2);
}

}  // namespace
}  // namespace segd::server::detail
