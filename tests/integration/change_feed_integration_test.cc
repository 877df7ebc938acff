// The change feed over HTTP against the real server: long polls released by writes from other
// connections, Server-Sent Events (framing, resume, bookmarks), expired cursors, and a
// consumer that resumes from its stored cursor across kill -9 of segd.

#include <algorithm>
#include <atomic>
#include <boost/asio/read.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/time_text.h"
#include "gtest/gtest.h"
#include "server/webhooks.h"
#include "simdjson.h"
#include "tests/integration/server_process.h"
#include "tests/testutil/temp_dir.h"

namespace segd {
namespace {

using testutil::HttpClient;
using testutil::HttpResult;
using testutil::ServerProcess;
using testutil::TempDir;

struct FeedChange {
  std::string cursor, user, reason;
  std::vector<std::string> entered, exited;
};

struct FeedPage {
  std::vector<FeedChange> changes;
  std::string next;
};

FeedPage ParsePage(const std::string& body) {
  FeedPage page;
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(body);
  page.next = std::string(std::string_view(doc["next"]));
  for (simdjson::dom::element c : doc["changes"].get_array()) {
    FeedChange change;
    change.cursor = std::string(std::string_view(c["cursor"]));
    change.user = std::string(std::string_view(c["user_id"]));
    change.reason = std::string(std::string_view(c["reason"]));
    for (simdjson::dom::element s : c["entered"].get_array()) {
      change.entered.emplace_back(std::string_view(s));
    }
    for (simdjson::dom::element s : c["exited"].get_array()) {
      change.exited.emplace_back(std::string_view(s));
    }
    page.changes.push_back(std::move(change));
  }
  return page;
}

// Reads an event stream: the head, then one event at a time from the chunked body.
class SseClient {
 public:
  struct Event {
    std::string id, event, data;
  };

  explicit SseClient(uint16_t port) : socket_(ioc_) {
    socket_.connect({boost::asio::ip::make_address("127.0.0.1"), port});
    on_body_ = [this](uint64_t, boost::beast::string_view body, boost::beast::error_code&) {
      text_.append(body.data(), body.size());
      return body.size();
    };
    parser_.on_chunk_body(on_body_);
  }

  // Sends the request and reads the head; returns the status.
  unsigned Start(const std::string& target, const std::string& last_event_id = "") {
    std::string req = "GET " + target + " HTTP/1.1\r\nHost: x\r\n";
    if (!last_event_id.empty()) req += "Last-Event-ID: " + last_event_id + "\r\n";
    boost::asio::write(socket_, boost::asio::buffer(req + "\r\n"));
    boost::beast::http::read_header(socket_, buffer_, parser_);
    content_type_ = std::string(parser_.get()[boost::beast::http::field::content_type]);
    if (!parser_.chunked()) {  // an error answer: read it whole
      parser_.body_limit(1 << 20);
      boost::beast::http::read(socket_, buffer_, parser_);
    }
    return parser_.get().result_int();
  }
  const std::string& content_type() const { return content_type_; }
  const std::string& error_body() const { return parser_.get().body(); }

  // The next event; nullopt if the stream ended.
  std::optional<Event> Next() {
    for (;;) {
      size_t end = text_.find("\n\n");
      if (end != std::string::npos) {
        std::string block = text_.substr(0, end);
        text_.erase(0, end + 2);
        Event e;
        size_t pos = 0;
        while (pos <= block.size()) {
          size_t nl = block.find('\n', pos);
          if (nl == std::string::npos) nl = block.size();
          std::string line = block.substr(pos, nl - pos);
          pos = nl + 1;
          size_t colon = line.find(": ");
          if (colon == std::string::npos) continue;
          std::string field = line.substr(0, colon), value = line.substr(colon + 2);
          if (field == "id") e.id = value;
          if (field == "event") e.event = value;
          if (field == "data") e.data = value;
        }
        return e;
      }
      if (parser_.is_done()) return std::nullopt;
      boost::beast::error_code ec;
      boost::beast::http::read_some(socket_, buffer_, parser_, ec);
      if (ec) return std::nullopt;
    }
  }

 private:
  boost::asio::io_context ioc_;
  boost::asio::ip::tcp::socket socket_;
  boost::beast::flat_buffer buffer_;
  boost::beast::http::response_parser<boost::beast::http::string_body> parser_;
  std::function<size_t(uint64_t, boost::beast::string_view, boost::beast::error_code&)> on_body_;
  std::string text_;
  std::string content_type_;
};

class ChangeFeedHttp : public ::testing::Test {
 protected:
  void Start(std::vector<std::string> flags = {}) {
    server_ = std::make_unique<ServerProcess>(dir_.path(), flags);
    ASSERT_TRUE(server_->started()) << server_->start_line();
    client_ = std::make_unique<HttpClient>(server_->port());
  }
  void Segment(const std::string& name) {
    ASSERT_EQ(client_->Post("/v1/segments", R"({"name":")" + name + R"("})").status, 201u);
  }
  void Add(const std::string& user, const std::string& segment) {
    ASSERT_EQ(client_->Post("/v1/users/" + user + "/segments", R"({"add":[")" + segment + R"("]})")
                  .status,
              200u);
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<HttpClient> client_;
};

TEST_F(ChangeFeedHttp, PagesCarryEntriesExitsAndReasonsInLogOrder) {
  Start();
  Segment("A");
  Segment("B");
  ASSERT_EQ(client_->Post("/v1/users/u1/segments", R"({"add":["A","B"]})").status, 200u);
  ASSERT_EQ(client_->Post("/v1/users/u1/segments", R"({"remove":["A"]})").status, 200u);
  // Only the expiry moves: no change.
  ASSERT_EQ(
      client_->Post("/v1/users/u1/segments", R"({"add":[{"name":"B","ttl_seconds":60}]})").status,
      200u);
  ASSERT_EQ(
      client_->Request("POST", "/v1/segments/A/users:import", "u2\nu3\n", "text/plain").status,
      200u);
  HttpResult r = client_->Get("/v1/changes?after=0");
  ASSERT_EQ(r.status, 200u) << r.body;
  FeedPage page = ParsePage(r.body);
  ASSERT_EQ(page.changes.size(), 4u) << r.body;
  EXPECT_EQ(page.changes[0].entered, (std::vector<std::string>{"A", "B"}));
  EXPECT_EQ(page.changes[0].reason, "api");
  EXPECT_EQ(page.changes[1].exited, std::vector<std::string>{"A"});
  EXPECT_EQ(page.changes[2].user, "u2");
  EXPECT_EQ(page.changes[2].reason, "import");
  EXPECT_EQ(page.changes[3].user, "u3");
  EXPECT_EQ(page.next, page.changes[3].cursor);
  // A filter keeps only its segments; pages resume from `next`.
  page = ParsePage(client_->Get("/v1/changes?after=0&segment=B").body);
  ASSERT_EQ(page.changes.size(), 1u);
  EXPECT_EQ(page.changes[0].entered, std::vector<std::string>{"B"});
  FeedPage first = ParsePage(client_->Get("/v1/changes?after=0&limit=1").body);
  ASSERT_EQ(first.changes.size(), 1u);
  FeedPage rest = ParsePage(client_->Get("/v1/changes?limit=10&after=" + first.next).body);
  EXPECT_EQ(rest.changes.size(), 3u);
  // Without `after`, the feed starts now.
  EXPECT_TRUE(ParsePage(client_->Get("/v1/changes").body).changes.empty());
}

// Rule segments' entries and exits flow through the feed as changes of their own.
TEST_F(ChangeFeedHttp, RuleChangesAreInTheFeed) {
  Start();
  ASSERT_EQ(client_->Post("/v1/segments", R"j({"name":"buyers","rule":"did(purchase)"})j").status,
            201u);
  // The rule's first backfill finishes at once on an empty log; wait until it answers.
  for (int i = 0; i < 100; ++i) {
    if (client_->Get("/v1/segments/buyers").body.find("\"state\":\"ready\"") != std::string::npos) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(client_->Post("/v1/events", R"({"user_id":"b1","type":"purchase"})").status, 200u);
  FeedPage page = ParsePage(client_->Get("/v1/changes?after=0&segment=buyers").body);
  ASSERT_EQ(page.changes.size(), 1u);
  EXPECT_EQ(page.changes[0].user, "b1");
  EXPECT_EQ(page.changes[0].reason, "rule");
  EXPECT_EQ(page.changes[0].entered, std::vector<std::string>{"buyers"});
}

TEST_F(ChangeFeedHttp, BadQueriesAreRefusedClearly) {
  Start();
  Segment("A");
  EXPECT_EQ(client_->Get("/v1/changes?after=xyz").status, 400u);
  EXPECT_EQ(client_->Get("/v1/changes?limit=0").status, 400u);
  EXPECT_EQ(client_->Get("/v1/changes?limit=10001").status, 400u);
  EXPECT_EQ(client_->Get("/v1/changes?wait=61s").status, 400u);
  EXPECT_EQ(client_->Get("/v1/changes?wait=soon").status, 400u);
  EXPECT_EQ(client_->Get("/v1/changes?segment=nope").status, 404u);
  EXPECT_EQ(client_->Get("/v1/changes?after=00000000000000ff").status, 400u);  // past the end
  EXPECT_EQ(client_->Get("/v1/changes?wait=0s").status, 200u);
  SseClient sse(server_->port());
  EXPECT_EQ(sse.Start("/v1/changes/stream?after=bad"), 400u);
}

TEST_F(ChangeFeedHttp, ALongPollIsReleasedByAWriteOnAnotherConnection) {
  Start();
  Segment("A");
  Segment("B");
  FeedPage got;
  std::thread poller([&] {
    HttpClient poll(server_->port());
    HttpResult r = poll.Get("/v1/changes?wait=30s&segment=A");
    got = ParsePage(r.body);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  Add("u1", "B");  // not for the poll's filter: it keeps waiting
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  Add("u2", "A");
  poller.join();
  ASSERT_EQ(got.changes.size(), 1u);
  EXPECT_EQ(got.changes[0].user, "u2");
  // A poll that times out answers an empty page whose `next` has moved past what it examined.
  Add("u3", "B");
  FeedPage empty = ParsePage(client_->Get("/v1/changes?wait=1s&segment=A&after=" + got.next).body);
  EXPECT_TRUE(empty.changes.empty());
  EXPECT_GT(empty.next, got.next);
}

TEST_F(ChangeFeedHttp, EventStreamFramesResumesAndBookmarks) {
  Start({"--feed-bookmark", "1s"});
  Segment("A");
  Add("u1", "A");
  Add("u2", "A");
  SseClient sse(server_->port());
  ASSERT_EQ(sse.Start("/v1/changes/stream?after=0"), 200u);
  EXPECT_EQ(sse.content_type(), "text/event-stream; charset=utf-8");
  auto e1 = sse.Next();
  ASSERT_TRUE(e1);
  EXPECT_EQ(e1->event, "change");
  EXPECT_NE(e1->data.find(R"("user_id":"u1")"), std::string::npos) << e1->data;
  EXPECT_NE(e1->data.find(R"("cursor":")" + e1->id + "\""), std::string::npos);
  auto e2 = sse.Next();
  ASSERT_TRUE(e2);
  EXPECT_NE(e2->data.find(R"("user_id":"u2")"), std::string::npos);
  // Live: a write on another connection arrives on the open stream.
  Add("u3", "A");
  auto e3 = sse.Next();
  ASSERT_TRUE(e3);
  EXPECT_EQ(e3->event, "change");
  EXPECT_NE(e3->data.find(R"("user_id":"u3")"), std::string::npos);
  // Quiet: a bookmark with the current cursor.
  auto bookmark = sse.Next();
  ASSERT_TRUE(bookmark);
  EXPECT_EQ(bookmark->event, "bookmark");
  EXPECT_EQ(bookmark->id, e3->id);
  EXPECT_EQ(bookmark->data, "{}");
  // Resume with Last-Event-ID: what came after it, nothing before.
  SseClient resumed(server_->port());
  ASSERT_EQ(resumed.Start("/v1/changes/stream", e1->id), 200u);
  auto r2 = resumed.Next();
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->id, e2->id);
  // A filtered stream that sees only other segments' changes still moves its bookmarks on.
  Segment("B");
  SseClient filtered(server_->port());
  ASSERT_EQ(filtered.Start("/v1/changes/stream?segment=B"), 200u);
  auto first = filtered.Next();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->event, "bookmark");
  Add("u4", "A");
  auto later = filtered.Next();
  ASSERT_TRUE(later);
  EXPECT_EQ(later->event, "bookmark");
  EXPECT_GT(later->id, first->id);
}

TEST_F(ChangeFeedHttp, CursorsPastTheRetentionExpire) {
  Start({"--history-retention", "1s"});
  Segment("A");
  Add("old", "A");
  FeedPage page = ParsePage(client_->Get("/v1/changes?after=0").body);
  ASSERT_EQ(page.changes.size(), 1u);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  Add("new", "A");
  HttpResult expired = client_->Get("/v1/changes?after=0000000000000000");
  EXPECT_EQ(expired.status, 410u) << expired.body;
  EXPECT_NE(expired.body.find("cursor_expired"), std::string::npos);
  SseClient sse(server_->port());
  EXPECT_EQ(sse.Start("/v1/changes/stream?after=0000000000000000"), 410u);
  // From its own cursor, the consumer is still in range.
  FeedPage next = ParsePage(client_->Get("/v1/changes?after=" + page.next).body);
  ASSERT_EQ(next.changes.size(), 1u);
  EXPECT_EQ(next.changes[0].user, "new");
}

// A consumer that stores its cursor sees every acknowledged change once, in order, across a
// kill -9 of segd in the middle of writes, and agrees with the history report.
TEST_F(ChangeFeedHttp, AResumingConsumerMissesNothingAcrossKillDashNine) {
  Start();
  Segment("k");
  std::atomic<int> acknowledged{0};
  std::string cursor = "0";
  std::vector<FeedChange> seen;
  auto consume = [&](uint16_t port) {
    HttpClient c(port);
    for (;;) {
      HttpResult r = c.Get("/v1/changes?limit=37&wait=1s&after=" + cursor);
      if (r.status != 200) return;
      FeedPage page = ParsePage(r.body);
      for (FeedChange& ch : page.changes) {
        if (!seen.empty() && ch.cursor <= seen.back().cursor) continue;  // dedupe by cursor
        seen.push_back(ch);
      }
      cursor = page.next;  // "stored" after processing
      if (page.changes.empty()) return;
    }
  };
  {
    std::atomic<bool> stop{false};
    std::thread writer([&] {
      HttpClient w(server_->port());
      for (int i = 0; !stop.load(); ++i) {
        if (w.Post("/v1/users/w" + std::to_string(i) + "/segments", R"({"add":["k"]})").status !=
            200) {
          break;
        }
        acknowledged = i + 1;
      }
    });
    std::thread reader([&] {
      HttpClient c(server_->port());
      for (int round = 0; round < 5; ++round) {
        HttpResult r = c.Get("/v1/changes?limit=50&after=" + cursor);
        if (r.status != 200) break;
        FeedPage page = ParsePage(r.body);
        for (FeedChange& ch : page.changes) seen.push_back(ch);
        cursor = page.next;
      }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    reader.join();
    EXPECT_EQ(server_->Kill(), 128 + SIGKILL);
    stop = true;
    writer.join();
  }
  ASSERT_GT(acknowledged.load(), 0);
  Start();
  consume(server_->port());
  // Every acknowledged add is there, once, in order.
  std::set<std::string> users;
  for (size_t i = 0; i < seen.size(); ++i) {
    if (i > 0) {
      EXPECT_LT(seen[i - 1].cursor, seen[i].cursor);
    }
    EXPECT_EQ(seen[i].entered, std::vector<std::string>{"k"});
    EXPECT_TRUE(users.insert(seen[i].user).second) << "twice: " << seen[i].user;
  }
  for (int i = 0; i < acknowledged; ++i) {
    EXPECT_TRUE(users.count("w" + std::to_string(i))) << "missed w" << i;
  }
  // The history report of the same period lists the same adds.
  HttpResult csv = client_->Get("/v1/reports/history?segment=k");
  ASSERT_EQ(csv.status, 200u);
  size_t rows = 0;
  for (size_t pos = csv.body.find('\n'); pos != std::string::npos && pos + 1 < csv.body.size();
       pos = csv.body.find('\n', pos + 1)) {
    ++rows;
  }
  EXPECT_EQ(rows, seen.size());
}

}  // namespace
}  // namespace segd

namespace segd {
namespace {

// Point in time over HTTP: membership at instants before and after changes, and size series.
TEST_F(ChangeFeedHttp, PointInTimeAnswersFromTheHistory) {
  Start();
  Segment("A");
  HttpResult seg = client_->Get("/v1/segments/A");
  const size_t at = seg.body.find("\"created_at\":\"");
  ASSERT_NE(at, std::string::npos) << seg.body;
  const std::string created = seg.body.substr(at + 14, 24);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  Add("u1", "A");
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  HttpResult check = client_->Get("/v1/segments/A/users/u1");
  ASSERT_NE(check.body.find("true"), std::string::npos);
  ASSERT_EQ(client_->Post("/v1/users/u1/segments", R"({"remove":["A"]})").status, 200u);
  // Before the add: out. Now (after the remove): out. In between: asked through the feed's
  // own times.
  FeedPage page = ParsePage(client_->Get("/v1/changes?after=0").body);
  ASSERT_EQ(page.changes.size(), 2u);
  HttpResult feed = client_->Get("/v1/changes?after=0");
  const size_t add_at = feed.body.find("\"at\":\"");
  const std::string added = feed.body.substr(add_at + 6, 24);
  HttpResult before = client_->Get("/v1/segments/A/users/u1?at=" + created);
  EXPECT_EQ(before.status, 200u) << before.body;
  EXPECT_NE(before.body.find("\"member\":false"), std::string::npos) << before.body;
  HttpResult during = client_->Get("/v1/segments/A/users/u1?at=" + added);
  EXPECT_NE(during.body.find("\"member\":true"), std::string::npos) << during.body;
  EXPECT_NE(during.body.find("\"at\":\"" + added + "\""), std::string::npos) << during.body;
  HttpResult later = client_->Get("/v1/segments/A/users/u1?at=2999-01-01T00:00:00Z");
  EXPECT_NE(later.body.find("\"member\":false"), std::string::npos) << later.body;
  HttpResult stranger = client_->Get("/v1/segments/A/users/nobody?at=" + added);
  EXPECT_NE(stranger.body.find("\"member\":false"), std::string::npos);
  EXPECT_EQ(client_->Get("/v1/segments/A/users/u1?at=yesterday").status, 400u);
  EXPECT_EQ(client_->Get("/v1/segments/nope/users/u1?at=" + added).status, 404u);

  // Sizes: one point per whole minute from an hour ago; the last ones see the entry and exit.
  HttpResult sizes = client_->Get("/v1/segments/A/sizes?from=2020-01-01T00:00:00Z&step=31d");
  EXPECT_EQ(sizes.status, 200u) << sizes.body;
  EXPECT_NE(sizes.body.find("\"segment\":\"A\",\"points\":["), std::string::npos) << sizes.body;
  EXPECT_EQ(client_->Get("/v1/segments/A/sizes?from=2020-01-01T00:00:00Z&step=1m").status, 400u)
      << "too many points";
  EXPECT_EQ(client_->Get("/v1/segments/A/sizes?from=2020-01-01T00:00:00Z&step=10s").status, 400u);
  EXPECT_EQ(client_->Get("/v1/segments/A/sizes?step=1d").status, 400u);
  // A one-minute step that ends just after the add holds its entry (and the exit if it came
  // before the step's end); the size is what is left.
  auto added_ms = ParseRfc3339Millis(added);
  ASSERT_TRUE(added_ms.ok());
  std::string from;
  AppendRfc3339Millis(&from, *added_ms - 60'000 + 5);
  HttpResult one = client_->Get("/v1/segments/A/sizes?step=1m&from=" + from);
  ASSERT_EQ(one.status, 200u) << one.body;
  simdjson::dom::parser parser;
  simdjson::dom::element points = parser.parse(one.body)["points"];
  ASSERT_EQ(points.get_array().size(), 1u) << one.body;
  simdjson::dom::element p = points.at(0);
  EXPECT_EQ(uint64_t(p["entered"]), 1u) << one.body;
  EXPECT_EQ(uint64_t(p["user_count"]), 1u - uint64_t(p["exited"])) << one.body;
}

}  // namespace
}  // namespace segd

namespace segd {
namespace {

std::string RunCommand(const std::string& command) {
  std::string out;
  FILE* p = popen(command.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

size_t Lines(const std::string& text) { return std::count(text.begin(), text.end(), '\n'); }

// The example consumer of docs/changes.md resumes from its cursor file: a second run prints
// only what came after the first.
TEST_F(ChangeFeedHttp, TheExampleConsumerResumesFromItsCursorFile) {
  Start();
  Segment("A");
  Add("u1", "A");
  Add("u2", "A");
  const std::string cursor = dir_.path() + "/consumer-cursor";
  const std::string command = "python3 " SEGD_SOURCE_DIR
                              "/docs/examples/feed_consumer.py --url "
                              "http://127.0.0.1:" +
                              std::to_string(server_->port()) + " --cursor-file " + cursor +
                              " --max-pages 1 2>&1";
  const std::string first = RunCommand(command);
  EXPECT_EQ(Lines(first), 2u) << first;
  EXPECT_NE(first.find(R"("user_id":"u1")"), std::string::npos) << first;
  Add("u3", "A");
  const std::string second = RunCommand(command);
  EXPECT_EQ(Lines(second), 1u) << second;
  EXPECT_NE(second.find(R"("user_id":"u3")"), std::string::npos) << second;
}

}  // namespace
}  // namespace segd

namespace segd {
namespace {

// A webhook receiver: answers 200, 500, or nothing (holds the connection past segd's timeout),
// as the test says, and records every request it reads.
class Receiver {
 public:
  enum class Mode { kOk, kFail, kHang };
  struct Delivery {
    std::string body, signature;
    Mode answered;
  };

  Receiver() : acceptor_(ioc_, {boost::asio::ip::make_address("127.0.0.1"), 0}) {
    thread_ = std::thread([this] { Run(); });
  }
  ~Receiver() {
    stop_ = true;
    // A blocking accept is not woken by closing the acceptor: connect once to end it.
    boost::asio::io_context ioc;
    boost::asio::ip::tcp::socket wake(ioc);
    boost::beast::error_code ignored;
    wake.connect({boost::asio::ip::make_address("127.0.0.1"), port()}, ignored);
    thread_.join();
  }
  uint16_t port() const { return acceptor_.local_endpoint().port(); }
  void set_mode(Mode m) { mode_ = m; }
  std::vector<Delivery> deliveries() {
    std::lock_guard<std::mutex> lock(mu_);
    return deliveries_;
  }
  // Waits until `pred(deliveries)` holds, for at most `seconds`.
  bool WaitFor(const std::function<bool(const std::vector<Delivery>&)>& pred, int seconds) {
    for (int i = 0; i < seconds * 20; ++i) {
      if (pred(deliveries())) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

 private:
  void Run() {
    namespace http = boost::beast::http;
    while (!stop_) {
      boost::asio::ip::tcp::socket socket(ioc_);
      boost::beast::error_code ec;
      acceptor_.accept(socket, ec);
      if (ec || stop_) return;
      boost::beast::flat_buffer buffer;
      http::request<http::string_body> req;
      http::read(socket, buffer, req, ec);
      if (ec) continue;
      const Mode mode = mode_.load();
      {
        std::lock_guard<std::mutex> lock(mu_);
        deliveries_.push_back({req.body(), std::string(req["Segd-Signature"]), mode});
      }
      if (mode == Mode::kHang) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1500));
        continue;  // closes without answering
      }
      http::response<http::string_body> res(
          mode == Mode::kOk ? http::status::ok : http::status::internal_server_error, 11);
      res.body() = "{}";
      res.prepare_payload();
      http::write(socket, res, ec);
    }
  }

  boost::asio::io_context ioc_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::atomic<Mode> mode_{Mode::kOk};
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<Delivery> deliveries_;
  std::thread thread_;
};

// Checks `Segd-Signature: t=…,v1=HEX` against HMAC-SHA256(secret, t + "." + body).
bool SignatureHolds(const Receiver::Delivery& d, const std::string& secret) {
  const size_t comma = d.signature.find(",v1=");
  if (d.signature.rfind("t=", 0) != 0 || comma == std::string::npos) return false;
  const std::string t = d.signature.substr(2, comma - 2);
  return d.signature.substr(comma + 4) == server::HmacSha256Hex(secret, t + "." + d.body);
}

TEST_F(ChangeFeedHttp, WebhooksAreSignedRetriedAndResumeAfterARestart) {
  const std::vector<std::string> flags = {"--webhook-timeout", "1s", "--webhook-backoff", "1s"};
  Start(flags);
  Segment("A");
  Segment("B");
  Receiver receiver;
  receiver.set_mode(Receiver::Mode::kFail);
  const std::string url = "http://127.0.0.1:" + std::to_string(receiver.port()) + "/hook";
  HttpResult created = client_->Post(
      "/v1/webhooks", R"({"url":")" + url + R"(","secret":"s3cret","segments":["A"]})");
  ASSERT_EQ(created.status, 201u) << created.body;
  EXPECT_EQ(created.body.find("s3cret"), std::string::npos) << "the secret is never shown";
  const size_t id_at = created.body.find("\"id\":\"") + 6;
  const std::string id = created.body.substr(id_at, created.body.find('"', id_at) - id_at);

  Add("u0", "B");  // not for this webhook
  Add("u1", "A");
  // Refused (500), then no answer within the timeout: two failures, each retried.
  ASSERT_TRUE(receiver.WaitFor([](auto& d) { return !d.empty(); }, 5));
  receiver.set_mode(Receiver::Mode::kHang);
  ASSERT_TRUE(receiver.WaitFor([](auto& d) { return d.size() >= 2; }, 5));
  HttpResult failing = client_->Get("/v1/webhooks/" + id);
  EXPECT_NE(failing.body.find("\"failures\":"), std::string::npos);
  EXPECT_EQ(failing.body.find("\"failures\":0"), std::string::npos) << failing.body;
  EXPECT_EQ(failing.body.find("\"last_error\":null"), std::string::npos) << failing.body;
  receiver.set_mode(Receiver::Mode::kOk);
  ASSERT_TRUE(receiver.WaitFor(
      [](auto& d) { return !d.empty() && d.back().answered == Receiver::Mode::kOk; }, 15));
  for (const Receiver::Delivery& d : receiver.deliveries()) {
    EXPECT_TRUE(SignatureHolds(d, "s3cret")) << d.signature;
    EXPECT_NE(d.body.find(R"("user_id":"u1","entered":["A"])"), std::string::npos) << d.body;
    EXPECT_EQ(d.body.find("u0"), std::string::npos) << "filtered out: " << d.body;
  }
  EXPECT_FALSE(SignatureHolds({receiver.deliveries().back().body, "t=1,v1=00", {}}, "s3cret"));
  HttpResult ok = client_->Get("/v1/webhooks/" + id);
  EXPECT_NE(ok.body.find("\"failures\":0"), std::string::npos) << ok.body;
  EXPECT_NE(ok.body.find("\"lag\":0"), std::string::npos) << ok.body;
  EXPECT_NE(ok.body.find("\"state\":\"active\""), std::string::npos) << ok.body;

  // A change the receiver refuses, then segd dies: after the restart it is delivered, and the
  // acknowledged one is not sent again.
  receiver.set_mode(Receiver::Mode::kFail);
  const size_t before = receiver.deliveries().size();
  Add("u2", "A");
  ASSERT_TRUE(receiver.WaitFor([&](auto& d) { return d.size() > before; }, 5));
  ASSERT_EQ(server_->Kill(), 128 + SIGKILL);
  receiver.set_mode(Receiver::Mode::kOk);
  const size_t at_restart = receiver.deliveries().size();
  Start(flags);
  ASSERT_TRUE(receiver.WaitFor(
      [&](auto& d) { return d.size() > at_restart && d.back().answered == Receiver::Mode::kOk; },
      10));
  const std::string resumed = receiver.deliveries().back().body;
  EXPECT_NE(resumed.find(R"("user_id":"u2")"), std::string::npos) << resumed;
  EXPECT_EQ(resumed.find(R"("user_id":"u1")"), std::string::npos) << resumed;

  HttpResult list = client_->Get("/v1/webhooks");
  EXPECT_NE(list.body.find(id), std::string::npos) << list.body;
  EXPECT_EQ(client_->Request("DELETE", "/v1/webhooks/" + id).status, 204u);
  EXPECT_EQ(client_->Get("/v1/webhooks/" + id).status, 404u);
  // Deleted: nothing more is sent.
  const size_t after_delete = receiver.deliveries().size();
  Add("u3", "A");
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(receiver.deliveries().size(), after_delete);
}

TEST_F(ChangeFeedHttp, BadWebhooksAreRefused) {
  Start();
  Segment("A");
  EXPECT_EQ(client_->Post("/v1/webhooks", R"({"url":"https://x.example/h","secret":"s"})").status,
            400u);
  EXPECT_EQ(client_->Post("/v1/webhooks", R"({"url":"http://127.0.0.1:9/h"})").status, 400u);
  EXPECT_EQ(client_->Post("/v1/webhooks", R"({"secret":"s"})").status, 400u);
  EXPECT_EQ(client_->Post("/v1/webhooks", R"({"url":"http://:80/h","secret":"s"})").status, 400u);
  EXPECT_EQ(client_
                ->Post("/v1/webhooks",
                       R"({"url":"http://127.0.0.1:9/h","secret":"s","segments":["nope"]})")
                .status,
            404u);
  EXPECT_EQ(client_->Get("/v1/webhooks/nope").status, 404u);
  EXPECT_EQ(client_->Request("DELETE", "/v1/webhooks/nope").status, 404u);
}

}  // namespace
}  // namespace segd
