#include "server/detail/write_gatherer.h"

#include <boost/asio/post.hpp>
#include <utility>

namespace segd::server::detail {

namespace {

// An answer written before its batch was found to have failed (to be written, or synced):
// nothing of the batch was applied or kept, so the success becomes the error.
void FailIfSucceeded(const absl::Status& status, std::unique_ptr<Response>& r) {
  if (status.ok() || r->status >= 300) return;
  auto failed = std::make_unique<Response>();
  ErrorResponse(status, *failed);
  failed->headers = std::move(r->headers);  // CORS headers, if any
  failed->caller = std::move(r->caller);
  r = std::move(failed);
}

}  // namespace

WriteGatherer::~WriteGatherer() {
  MutexLock lock(&mu_);
  settled_.Wait(&mu_, [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return waiting_durable_ == 0; });
}

bool WriteGatherer::Admit() {
  // Under fsync the alternative to gathering is a worker that sleeps in the sync.
  if (wait_durable_) return true;
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
  for (size_t i = 0; i < group.size(); ++i) FailIfSucceeded(outcomes[i], group[i].response);
  if (!wait_durable_) {
    Answer(std::move(group), absl::OkStatus());
    return;
  }
  {
    MutexLock lock(&mu_);
    ++waiting_durable_;
  }
  engine_.WhenDurable([this, group = std::move(group)](absl::Status status) mutable {
    boost::asio::post(ioc_, [group = std::move(group), status = std::move(status)]() mutable {
      Answer(std::move(group), status);
    });
    MutexLock lock(&mu_);
    if (--waiting_durable_ == 0) settled_.SignalAll();
  });
}

void WriteGatherer::Answer(std::vector<Entry> group, const absl::Status& status) {
  for (Entry& entry : group) {
    FailIfSucceeded(status, entry.response);
    std::move(entry.done)(std::move(entry.response));
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
