#include "server/detail/output_batch.h"

#include <boost/beast/http/status.hpp>
#include <ctime>

#include "absl/strings/str_cat.h"
#include "engine/engine.h"

namespace segd::server::detail {
namespace {

void AppendHead(std::string* out, const Response& response, bool keep_alive) {
  auto beast_reason =
      boost::beast::http::obsolete_reason(static_cast<boost::beast::http::status>(response.status));
  absl::string_view reason(beast_reason.data(), beast_reason.size());
  absl::StrAppend(out, "HTTP/1.1 ", response.status, " ", reason, "\r\nServer: segd\r\n",
                  DateHeader(), "Content-Type: ", response.content_type, "\r\n");
  for (const auto& [name, value] : response.headers) {
    absl::StrAppend(out, name, ": ", value, "\r\n");
  }
  if (!keep_alive) out->append("Connection: close\r\n");
}

}  // namespace

absl::string_view DateHeader() {
  thread_local int64_t cached_second = -1;
  thread_local char text[64];
  thread_local size_t length = 0;
  const int64_t now = engine::SystemClock::Default()->NowMs() / 1000;
  if (now != cached_second) {
    const std::time_t t = static_cast<std::time_t>(now);
    std::tm tm;
    gmtime_r(&t, &tm);
    length = std::strftime(text, sizeof text, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
    cached_second = now;
  }
  return absl::string_view(text, length);
}

std::string& OutputBatch::Tail() {
  if (!tail_open_) {
    pieces_.emplace_back();
    tail_open_ = true;
  }
  return pieces_.back();
}

void OutputBatch::AddText(absl::string_view text) { Tail().append(text.data(), text.size()); }

void OutputBatch::AddResponse(Response& response, bool keep_alive, bool head_only) {
  std::string& head = Tail();
  AppendHead(&head, response, keep_alive);
  if (response.status == 204) {
    head.append("\r\n");
    return;
  }
  absl::StrAppend(&head, "Content-Length: ", response.body.size(), "\r\n\r\n");
  if (head_only) return;
  body_bytes_ += response.body.size();
  if (response.body.size() < kCopyBodyBelow) {
    head.append(response.body);
  } else {
    pieces_.push_back(std::move(response.body));
    tail_open_ = false;
  }
}

void OutputBatch::AddChunkedHead(const Response& response, bool keep_alive) {
  std::string& head = Tail();
  AppendHead(&head, response, keep_alive);
  head.append("Transfer-Encoding: chunked\r\n\r\n");
}

void OutputBatch::AddChunk(std::string chunk) {
  if (chunk.empty()) return;
  absl::StrAppend(&Tail(), absl::Hex(chunk.size()), "\r\n");
  body_bytes_ += chunk.size();
  pieces_.push_back(std::move(chunk));
  tail_open_ = false;
  AddText("\r\n");
}

void OutputBatch::Clear() {
  pieces_.clear();
  tail_open_ = false;
  body_bytes_ = 0;
}

}  // namespace segd::server::detail
