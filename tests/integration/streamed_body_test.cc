// Event and import bodies read as a stream of lines (HttpSession, Api::OpenLines) against the
// real server: the same answers as a body read whole, with line numbers right across steps and
// chunk boundaries; an overlong line dropped and reported; a body far larger than the memory
// it may take; refusals before the body is read; pipelining after a streamed body.

#include <chrono>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "tests/integration/server_process.h"
#include "tests/testutil/temp_dir.h"

namespace segd {
namespace {

// Sanitizers keep shadow memory for every byte the server touches: its resident size says
// nothing about what segd holds there.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

using testutil::HttpClient;
using testutil::HttpResult;
using testutil::ServerProcess;
using testutil::TempDir;

// The process's peak resident memory (VmHWM) in KiB, or -1.
int64_t PeakRssKib(pid_t pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) != 0) continue;
    int64_t kib = -1;
    std::string digits;
    for (char c : line) {
      if (c >= '0' && c <= '9') digits += c;
    }
    return absl::SimpleAtoi(digits, &kib) ? kib : -1;
  }
  return -1;
}

// Sends a request whose body goes chunked, `chunk` bytes a chunk, and reads the answer.
HttpResult SendChunked(HttpClient& client, const std::string& target,
                       const std::string& content_type, const std::string& body, size_t chunk) {
  client.SendRaw(absl::StrCat("POST ", target, " HTTP/1.1\r\nHost: x\r\nContent-Type: ",
                              content_type, "\r\nTransfer-Encoding: chunked\r\n\r\n"));
  std::string framed;
  for (size_t at = 0; at < body.size(); at += chunk) {
    const std::string piece = body.substr(at, chunk);
    absl::StrAppend(&framed, absl::StrFormat("%x", piece.size()), "\r\n", piece, "\r\n");
    if (framed.size() >= (1 << 20)) {
      client.SendRaw(framed);
      framed.clear();
    }
  }
  client.SendRaw(framed + "0\r\n\r\n");
  return client.ReadResponse();
}

// A body of `lines` NDJSON events with blank and invalid lines at known places, and what the
// answer must say about it.
struct EventBody {
  std::string text;
  uint64_t valid = 0;
  std::vector<uint64_t> invalid;
};

EventBody MakeEvents(uint64_t lines) {
  EventBody b;
  for (uint64_t i = 1; i <= lines; ++i) {
    if (i % 5003 == 1) {
      b.text += "\r\n";  // blank: skipped, but counted in line numbers
    } else if (i % 7919 == 0) {
      b.text += "{\"user_id\":\"u1\",\"type\":\"not a type\"}\n";
      b.invalid.push_back(i);
    } else if (i % 10007 == 0) {
      b.text += "not json at all\n";
      b.invalid.push_back(i);
    } else {
      absl::StrAppend(&b.text, R"({"user_id":"u)", i % 500,
                      R"(","type":"page_viewed","properties":{"n":)", i,
                      R"(,"url":"/products/some-long-path"}})", "\n");
      ++b.valid;
    }
  }
  return b;
}

// The invalid line numbers an answer lists.
std::vector<uint64_t> InvalidLines(const std::string& answer) {
  std::vector<uint64_t> lines;
  for (size_t at = answer.find("\"line\":"); at != std::string::npos;
       at = answer.find("\"line\":", at + 1)) {
    uint64_t n = 0;
    size_t end = answer.find_first_not_of("0123456789", at + 7);
    if (absl::SimpleAtoi(answer.substr(at + 7, end - at - 7), &n)) lines.push_back(n);
  }
  return lines;
}

uint64_t Field(const std::string& answer, const std::string& name) {
  const std::string key = "\"" + name + "\":";
  size_t at = answer.find(key);
  if (at == std::string::npos) return UINT64_MAX;
  uint64_t n = 0;
  size_t end = answer.find_first_not_of("0123456789", at + key.size());
  return absl::SimpleAtoi(answer.substr(at + key.size(), end - at - key.size()), &n) ? n
                                                                                     : UINT64_MAX;
}

TEST(StreamedBodies, LargeEventBodiesAnswerAsIfReadWhole) {
  TempDir dir;
  ServerProcess server(dir.path());
  ASSERT_TRUE(server.started());
  HttpClient client(server.port());
  ASSERT_EQ(client.Post("/v1/segments", R"j({"name":"viewers","rule":"did(page_viewed)"})j").status,
            201u);
  // A new rule is computed in the background first (state "backfilling"); events sent before
  // it is "ready" change its members only when it is, which may be after the answer.
  bool ready = false;
  for (int i = 0; i < 1000 && !ready; ++i) {
    ready =
        client.Get("/v1/segments/viewers").body.find("\"state\":\"ready\"") != std::string::npos;
    if (!ready) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(ready) << client.Get("/v1/segments/viewers").body;
  // About 5 MiB: several steps of the consumer, lines cut by every chunk boundary.
  const EventBody body = MakeEvents(50000);
  ASSERT_GT(body.text.size(), 4u << 20);

  HttpResult whole = client.Request("POST", "/v1/events", body.text, "application/x-ndjson");
  ASSERT_EQ(whole.status, 200u) << whole.body;
  EXPECT_EQ(Field(whole.body, "accepted"), body.valid);
  EXPECT_EQ(Field(whole.body, "invalid_count"), body.invalid.size());
  EXPECT_EQ(InvalidLines(whole.body), body.invalid);
  // The membership changes are applied before the answer.
  EXPECT_NE(client.Get("/v1/segments/viewers/users/u499").body.find("\"member\":true"),
            std::string::npos);

  HttpResult chunked = SendChunked(client, "/v1/events", "application/x-ndjson", body.text, 7777);
  ASSERT_EQ(chunked.status, 200u) << chunked.body;
  EXPECT_EQ(chunked.body, whole.body);
  // The connection stays usable.
  EXPECT_EQ(client.Get("/health").status, 200u);

  // A small body (read whole, answered inline) gives the same kind of answer.
  const EventBody small = MakeEvents(20);
  HttpResult inline_answer =
      client.Request("POST", "/v1/events", small.text, "application/x-ndjson");
  EXPECT_EQ(Field(inline_answer.body, "accepted"), small.valid);
  EXPECT_EQ(InvalidLines(inline_answer.body), small.invalid);
}

TEST(StreamedBodies, AnOverlongLineIsInvalidAndTheRestIsRead) {
  TempDir dir;
  ServerProcess server(dir.path());
  ASSERT_TRUE(server.started());
  HttpClient client(server.port());
  const std::string event = R"({"user_id":"a","type":"t"})";
  std::string body = event + "\n" + std::string(3 << 19, 'x') + "\n" + event + "\n{\n" +
                     std::string(2 << 20, 'y');  // the last line, unfinished and too long
  HttpResult r = SendChunked(client, "/v1/events", "application/x-ndjson", body, 50000);
  ASSERT_EQ(r.status, 200u) << r.body;
  EXPECT_EQ(Field(r.body, "accepted"), 2u);
  EXPECT_EQ(InvalidLines(r.body), (std::vector<uint64_t>{2, 4, 5}));
  EXPECT_NE(r.body.find("longer than 1048576 bytes"), std::string::npos) << r.body;

  // Imports take the same path.
  ASSERT_EQ(client.Post("/v1/segments", R"({"name":"plain"})").status, 201u);
  std::string ids = "a\n" + std::string(1200000, 'z') + "\nb\n\nc";
  HttpResult imported =
      SendChunked(client, "/v1/segments/plain/users:import", "text/plain", ids, 65536);
  ASSERT_EQ(imported.status, 200u) << imported.body;
  EXPECT_EQ(Field(imported.body, "added"), 3u);
  EXPECT_EQ(InvalidLines(imported.body), (std::vector<uint64_t>{2}));
  EXPECT_EQ(Field(client.Get("/v1/segments/plain/count").body, "user_count"), 3u);
}

TEST(StreamedBodies, ABodyFarLargerThanTheBufferIsNeverHeldWhole) {
  TempDir dir;
  ServerProcess server(dir.path());
  ASSERT_TRUE(server.started());
  HttpClient client(server.port());
  ASSERT_EQ(client.Post("/v1/segments", R"({"name":"big"})").status, 201u);
  // 96 MiB of lines, one in ten thousand a user id and the rest blank. (Few ids: the log's
  // memory grows with the records an import writes, which is not what this test measures.)
  const std::string line_block(9999, '\n');
  std::string body;
  body.reserve(96u << 20);
  uint64_t ids = 0;
  std::set<std::string> distinct;
  while (body.size() < (96u << 20)) {
    std::string id = absl::StrCat("user-", ids % 5000);
    distinct.insert(id);
    ++ids;
    body += id;
    body += "\n";
    body += line_block;
  }
  // A first, small import warms up what any import allocates once (the log's buffers).
  ASSERT_EQ(SendChunked(client, "/v1/segments/big/users:import", "text/plain",
                        body.substr(0, 2u << 20), 1 << 20)
                .status,
            200u);
  const int64_t before = PeakRssKib(server.pid());
  ASSERT_GT(before, 0);
  HttpResult r = SendChunked(client, "/v1/segments/big/users:import", "text/plain", body, 1 << 20);
  ASSERT_EQ(r.status, 200u) << r.body;
  EXPECT_EQ(Field(r.body, "added") + Field(r.body, "updated"), ids);
  EXPECT_EQ(Field(client.Get("/v1/segments/big/count").body, "user_count"), distinct.size());
  const int64_t grew_kib = PeakRssKib(server.pid()) - before;
  if (kSanitized) GTEST_SKIP() << "resident memory is not segd's own under a sanitizer";
  // Read whole, the body alone would take 96 MiB; as a stream it takes a few.
  EXPECT_LT(grew_kib, 32 * 1024) << "peak resident memory grew by " << grew_kib << " KiB";
}

TEST(StreamedBodies, RefusalsComeBeforeTheBodyIsRead) {
  TempDir dir;
  ServerProcess server(dir.path());
  ASSERT_TRUE(server.started());
  const std::string lines(1 << 20, '\n');
  {
    HttpClient client(server.port());
    HttpResult r =
        SendChunked(client, "/v1/segments/nope/users:import", "text/plain", lines, 1 << 16);
    EXPECT_EQ(r.status, 404u);
    EXPECT_NE(r.body.find("segment_not_found"), std::string::npos) << r.body;
    EXPECT_FALSE(r.keep_alive);
  }
  {
    HttpClient client(server.port());
    HttpResult r =
        SendChunked(client, "/v1/events", "application/x-ndjson; charset=latin1", lines, 1 << 16);
    EXPECT_EQ(r.status, 415u);
  }
  {
    HttpClient client(server.port());
    ASSERT_EQ(client.Post("/v1/segments", R"({"name":"s"})").status, 201u);
    HttpResult r = SendChunked(client, "/v1/segments/s/users:import?ttl_seconds=0", "text/plain",
                               lines, 1 << 16);
    EXPECT_EQ(r.status, 400u);
  }
  {
    // Over the import limit: 413 once the chunks pass it.
    TempDir small_dir;
    ServerProcess small(small_dir.path(), {"--max-import-body", "2MiB"});
    ASSERT_TRUE(small.started()) << small.start_line();
    HttpClient client(small.port());
    HttpResult r = SendChunked(client, "/v1/events", "application/x-ndjson",
                               std::string(3 << 20, '\n'), 1 << 16);
    EXPECT_EQ(r.status, 413u);
  }
}

TEST(StreamedBodies, SingleEventsAndNdjsonCountApartInMetrics) {
  TempDir dir;
  ServerProcess server(dir.path());
  ASSERT_TRUE(server.started());
  HttpClient client(server.port());
  ASSERT_EQ(client.Post("/v1/events", R"({"user_id":"a","type":"t"})").status, 200u);
  ASSERT_EQ(client.Post("/v1/events", R"({"user_id":"b","type":"t"})").status, 200u);
  ASSERT_EQ(
      client.Request("POST", "/v1/events", MakeEvents(10).text, "application/x-ndjson").status,
      200u);
  ASSERT_EQ(
      SendChunked(client, "/v1/events", "application/x-ndjson", MakeEvents(10).text, 100).status,
      200u);
  const std::string metrics = client.Get("/metrics").body;
  EXPECT_NE(metrics.find("segd_http_requests_total{route=\"events\",status=\"200\"} 2"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("segd_http_requests_total{route=\"events_ndjson\",status=\"200\"} 2"),
            std::string::npos)
      << metrics;
}

TEST(StreamedBodies, PipelinedRequestsAfterAStreamedBodyAreAnsweredInOrder) {
  TempDir dir;
  ServerProcess server(dir.path());
  ASSERT_TRUE(server.started());
  HttpClient client(server.port());
  const EventBody body = MakeEvents(30000);
  std::string raw =
      "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\n"
      "Content-Length: " +
      std::to_string(body.text.size()) + "\r\n\r\n" + body.text +
      "GET /v1/users/u42 HTTP/1.1\r\nHost: x\r\n\r\n";
  client.SendRaw(raw);
  HttpResult first = client.ReadResponse();
  ASSERT_EQ(first.status, 200u) << first.body;
  EXPECT_EQ(Field(first.body, "accepted"), body.valid);
  HttpResult second = client.ReadResponse();
  EXPECT_EQ(second.status, 200u) << second.body;
  EXPECT_NE(second.body.find("\"user_id\":\"u42\""), std::string::npos);
}

}  // namespace
}  // namespace segd
