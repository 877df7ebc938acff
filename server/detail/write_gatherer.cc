#include "server/detail/write_gatherer.h"

#include <boost/asio/post.hpp>
#include <utility>

namespace segd::server::detail {

bool WriteGatherer::Admit() {
  bool post = false;
  {
    MutexLock lock(&mu_);
    if (gathering_) return true;
    ++window_writes_;
    if (!window_open_) {
      window_open_ = true;
      post = true;
    }
  }
  if (post) boost::asio::post(ioc_, [this] { EndWindow(); });
  return false;
}

void WriteGatherer::EndWindow() {
  MutexLock lock(&mu_);
  gathering_ = window_writes_ >= kMinGroup;
  window_writes_ = 0;
  window_open_ = false;
}

void WriteGatherer::Submit(std::unique_ptr<Response> response, Done done) {
  bool post = false;
  {
    MutexLock lock(&mu_);
    pending_.push_back({std::move(response), std::move(done)});
    if (!flush_posted_) {
      flush_posted_ = true;
      post = true;
    }
  }
  if (post) boost::asio::post(ioc_, [this] { Flush(); });
}

void WriteGatherer::Flush() {
  std::vector<Entry> group;
  {
    MutexLock lock(&mu_);
    group.swap(pending_);
    flush_posted_ = false;
    gathered_ += group.size();
    ++flushes_;
    gathering_ = group.size() >= kMinGroup;
  }
  std::vector<absl::Status> outcomes = engine_.RunGathered(group.size(), [&](size_t i) {
    Response& r = *group[i].response;
    // Moved out first: the function may reset the response it fills (an error answer does).
    auto fill = std::move(r.blocking);
    r.blocking = nullptr;
    fill(r);
  });
  for (size_t i = 0; i < group.size(); ++i) {
    std::unique_ptr<Response>& r = group[i].response;
    if (!outcomes[i].ok() && r->status < 300) {
      // Answered before its batch was written, and the write failed: nothing was applied.
      auto failed = std::make_unique<Response>();
      ErrorResponse(outcomes[i], *failed);
      failed->headers = std::move(r->headers);  // CORS headers, if any
      failed->caller = std::move(r->caller);
      r = std::move(failed);
    }
    std::move(group[i].done)(std::move(r));
  }
}

uint64_t WriteGatherer::gathered() const {
  MutexLock lock(&mu_);
  return gathered_;
}

uint64_t WriteGatherer::flushes() const {
  MutexLock lock(&mu_);
  return flushes_;
}

}  // namespace segd::server::detail
