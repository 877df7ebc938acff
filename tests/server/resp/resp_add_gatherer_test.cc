// AddGatherer under fsync: a group's SADDs are applied at once but answered only once the
// sink's durability wait has covered them; a failed sync answers each of them with its error.

#include "server/resp/resp_add_gatherer.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "server/metrics.h"
#include "tests/testutil/recording_sink.h"

namespace segd::server::resp {
namespace {

class AddGathererTest : public ::testing::Test {
 protected:
  AddGathererTest()
      : sink_(/*blocking_durability=*/true),
        engine_(engine::EngineOptions{nullptr, &sink_, 1}),
        metrics_({"x"}),
        commands_(engine_, config_, metrics_, nullptr, false),
        gatherer_(commands_, engine_, ioc_, /*wait_durable=*/true) {
    EXPECT_TRUE(engine_.CreateSegment({.name = "s"}).ok());
  }

  // Submits connection i's adds of `users`; its replies land in replies_[i].
  void Submit(int i, const std::vector<std::string>& users) {
    AddGatherer::Adds adds;
    for (const std::string& u : users) adds.emplace_back("s", u);
    gatherer_.Submit(std::move(adds), [this, i](std::string replies) {
      durable_when_answered_[i] = sink_.durable();
      replies_[i] = std::move(replies);
      ++answered_;
    });
  }

  // Runs the io_context until `n` connections are answered (the answers come from the
  // engine's durability thread, after the io_context may have run out of work).
  void RunUntilAnswered(int n) {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (answered_ < n && std::chrono::steady_clock::now() < give_up) {
      ioc_.restart();
      if (ioc_.poll() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

  testutil::RecordingSink sink_;
  engine::Engine engine_;
  ServerConfig config_;
  Metrics metrics_;
  RespCommands commands_;
  boost::asio::io_context ioc_;
  AddGatherer gatherer_;
  std::string replies_[3];
  size_t durable_when_answered_[3] = {};
  int answered_ = 0;
};

TEST_F(AddGathererTest, UnderFsyncAnswersOnlyOnceDurable) {
  Submit(0, {"a", "b"});
  Submit(1, {"c"});
  Submit(2, {"a"});  // already added by connection 0, in the same group
  const size_t written_before = sink_.accepted();
  ioc_.restart();
  ioc_.poll_one();  // the flush: one log batch, no answer yet
  EXPECT_EQ(answered_, 0);
  EXPECT_EQ(sink_.accepted(), written_before + 1);
  RunUntilAnswered(3);
  ASSERT_EQ(answered_, 3);
  EXPECT_EQ(replies_[0], ":1\r\n:1\r\n");
  EXPECT_EQ(replies_[1], ":1\r\n");
  EXPECT_EQ(replies_[2], ":0\r\n");
  for (size_t durable : durable_when_answered_) {
    EXPECT_GE(durable, written_before + 1) << "answered before the sync";
  }
  EXPECT_EQ(*engine_.Count("s"), 3u);
}

TEST_F(AddGathererTest, UnderFsyncAFailedSyncAnswersEveryAddWithItsError) {
  sink_.set_durability_status(absl::DataLossError("fsync failed"));
  Submit(0, {"a", "b"});
  Submit(1, {"c"});
  RunUntilAnswered(2);
  ASSERT_EQ(answered_, 2);
  EXPECT_EQ(replies_[0], "-ERR fsync failed\r\n-ERR fsync failed\r\n");
  EXPECT_EQ(replies_[1], "-ERR fsync failed\r\n");
}

}  // namespace
}  // namespace segd::server::resp
