// Unit tests: OutputBatch frames responses that an HTTP parser reads back exactly, copies small
// bodies and moves large ones, and frames chunked bodies.

#include "server/detail/output_batch.h"

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace segd::server::detail {
namespace {

namespace http = boost::beast::http;

std::string Joined(const OutputBatch& batch) {
  std::string all;
  for (const std::string& piece : batch.pieces()) all += piece;
  return all;
}

// Parses every response in `bytes`, in order.
std::vector<http::response<http::string_body>> ParseAll(const std::string& bytes) {
  std::vector<http::response<http::string_body>> out;
  size_t at = 0;
  while (at < bytes.size()) {
    http::response_parser<http::string_body> parser;
    parser.body_limit(1 << 30);
    parser.eager(true);
    boost::beast::error_code ec;
    const size_t used = parser.put(boost::asio::buffer(bytes.data() + at, bytes.size() - at), ec);
    EXPECT_FALSE(ec) << ec.message() << " at byte " << at;
    EXPECT_TRUE(parser.is_done()) << "an incomplete response at byte " << at;
    if (ec || !parser.is_done() || used == 0) break;
    out.push_back(parser.release());
    at += used;
  }
  return out;
}

TEST(OutputBatch, FramesPipelinedResponsesThatParseBackExactly) {
  OutputBatch batch;
  Response small;
  small.body = R"({"ok":true})";
  small.headers.emplace_back("Allow", "GET, POST");
  batch.AddResponse(small, true);
  Response large;
  large.status = 404;
  large.body = std::string(OutputBatch::kCopyBodyBelow + 5, 'x');
  batch.AddResponse(large, false);
  EXPECT_TRUE(large.body.empty()) << "a large body is moved, not copied";
  EXPECT_EQ(batch.body_bytes(), 11u + OutputBatch::kCopyBodyBelow + 5);

  auto responses = ParseAll(Joined(batch));
  ASSERT_EQ(responses.size(), 2u);
  EXPECT_EQ(responses[0].result_int(), 200);
  EXPECT_EQ(responses[0].body(), R"({"ok":true})");
  EXPECT_EQ(responses[0][http::field::allow], "GET, POST");
  EXPECT_EQ(responses[0][http::field::server], "segd");
  EXPECT_FALSE(responses[0][http::field::date].empty());
  EXPECT_TRUE(responses[0].keep_alive());
  EXPECT_EQ(responses[1].result_int(), 404);
  EXPECT_EQ(responses[1].body().size(), OutputBatch::kCopyBodyBelow + 5);
  EXPECT_FALSE(responses[1].keep_alive());
  // Head and small body share a piece; the large body is its own.
  EXPECT_EQ(batch.pieces().size(), 2u);
}

TEST(OutputBatch, FramesAChunkedBodyAndSkipsEmptyChunks) {
  OutputBatch batch;
  Response head;
  head.content_type = "text/csv; charset=utf-8";
  batch.AddChunkedHead(head, true);
  batch.AddChunk("a,b\r\n");
  batch.AddChunk("");  // would end the body if framed
  batch.AddChunk(std::string(70000, 'z'));
  batch.AddLastChunk();
  Response after;
  after.body = "{}";
  batch.AddResponse(after, true);

  auto responses = ParseAll(Joined(batch));
  ASSERT_EQ(responses.size(), 2u);
  EXPECT_EQ(responses[0][http::field::transfer_encoding], "chunked");
  EXPECT_EQ(responses[0][http::field::content_type], "text/csv; charset=utf-8");
  EXPECT_EQ(responses[0].body(), "a,b\r\n" + std::string(70000, 'z'));
  EXPECT_EQ(responses[1].body(), "{}");
}

TEST(OutputBatch, ClearStartsAnEmptyBatch) {
  OutputBatch batch;
  batch.AddText("HTTP/1.1 100 Continue\r\n\r\n");
  EXPECT_FALSE(batch.empty());
  batch.Clear();
  EXPECT_TRUE(batch.empty());
  EXPECT_EQ(batch.body_bytes(), 0u);
  Response r;
  batch.AddResponse(r, true);
  EXPECT_EQ(ParseAll(Joined(batch)).size(), 1u);
}

TEST(DateHeader, IsAnImfFixdateLine) {
  const std::string line(DateHeader());
  ASSERT_GE(line.size(), 8u);
  EXPECT_EQ(line.substr(0, 6), "Date: ");
  EXPECT_EQ(line.substr(line.size() - 6), " GMT\r\n");
  EXPECT_EQ(line.size(), std::string("Date: Sun, 22 Nov 2026 10:00:00 GMT\r\n").size());
}

}  // namespace
}  // namespace segd::server::detail
