#pragma once

// WriteGatherer: the single-user writes of many HTTP connections (a user's adds and removes,
// registering or deleting a user) run together, so that those arriving in one pass of the event
// loop cost one log write instead of one each: group commit across connections, as Redis
// writes its AOF once per pass.
//
// A connection with such a request (Response::Pool::kGathered: the Api's deferred handler in
// Response::blocking) submits it and waits. The first submission of a group posts a flush to
// the io_context; it runs after the handlers already queued there, which are the other reads
// that completed in the same poll, so what they submit joins the group. The flush runs every
// handler through Engine::RunGathered (one hold of the writer lock, combined log batches) and
// hands each connection its answer. A handler whose batch could not be written gets that
// error as its answer instead (memory holds none of the batch).
//
// Under --durability process a written batch is durable, and the flush answers at once.
// Gathering then pays when many writes arrive per pass, and costs a sparse write a pass of
// waiting (with 5% writes among reads, throughput measured 0.91x of ungathered). So Admit
// decides per write: it measures the writes that arrive in one pass (those gathered by a flush,
// or, while not gathering, those admitted before a posted marker runs) and gathers while that
// is at least kMinGroup.
//
// Under fsync (wait_durable) every single-user write is gathered, and a group is answered only
// once Engine::WhenDurable reports its batches synced: the engine's durability thread does the
// one sync a round of groups shares, and posts the answers back to the io_context. No I/O
// thread and no worker sleeps in the sync. If the sync fails, every answer of the group that
// was a success becomes that error.
//
// Thread safety: Admit and Submit from any thread. Flushes and answers run on an I/O thread,
// which calls each submission's `done` (the connection posts itself back to its strand). The
// destructor waits for the groups still waiting for durability to be posted (one sync).

#include <boost/asio/io_context.hpp>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "base/mutex.h"
#include "engine/engine.h"
#include "server/api.h"

namespace segd::server::detail {

class WriteGatherer {
 public:
  // Called with the answer, filled in.
  using Done = absl::AnyInvocable<void(std::unique_ptr<Response>) &&>;

  // `wait_durable`: acknowledge only what the engine reports durable (fsync, above).
  WriteGatherer(engine::Engine& engine, boost::asio::io_context& ioc, bool wait_durable = false)
      : engine_(engine), ioc_(ioc), wait_durable_(wait_durable) {}
  ~WriteGatherer();
  WriteGatherer(const WriteGatherer&) = delete;
  WriteGatherer& operator=(const WriteGatherer&) = delete;

  // Writes per pass at which gathering pays.
  static constexpr size_t kMinGroup = 8;

  // Whether to gather the next single-user write (then Submit it) or to run it at once.
  bool Admit() ABSL_LOCKS_EXCLUDED(mu_);
  // `response->blocking` fills the answer (it runs in the flush).
  void Submit(std::unique_ptr<Response> response, Done done) ABSL_LOCKS_EXCLUDED(mu_);

  // Submissions flushed and flushes run, for tests and metrics.
  uint64_t gathered() const ABSL_LOCKS_EXCLUDED(mu_);
  uint64_t flushes() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Entry {
    std::unique_ptr<Response> response;
    Done done;
  };
  void Flush() ABSL_LOCKS_EXCLUDED(mu_);
  // Hands every answer of `group` to its connection; successes become `status` if not OK.
  static void Answer(std::vector<Entry> group, const absl::Status& status);
  // Ends a measuring window (writes run at once, counted until this runs).
  void EndWindow() ABSL_LOCKS_EXCLUDED(mu_);

  engine::Engine& engine_;
  boost::asio::io_context& ioc_;
  const bool wait_durable_;
  mutable Mutex mu_;
  CondVar settled_;                                  // signalled when waiting_durable_ falls to 0
  size_t waiting_durable_ ABSL_GUARDED_BY(mu_) = 0;  // groups between WhenDurable and its post
  std::vector<Entry> pending_ ABSL_GUARDED_BY(mu_);
  bool flush_posted_ ABSL_GUARDED_BY(mu_) = false;
  bool gathering_ ABSL_GUARDED_BY(mu_) = true;
  bool window_open_ ABSL_GUARDED_BY(mu_) = false;
  size_t window_writes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t gathered_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t flushes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace segd::server::detail
