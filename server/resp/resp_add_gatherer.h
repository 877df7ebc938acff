#pragma once

// AddGatherer: single-member SADDs of many RESP connections applied as one engine batch, so
// that the SADDs which arrive in one pass of the event loop cost one log write, not one each
// (Redis likewise writes its AOF once per pass).
//
// A connection that has parsed single-member SADDs (RespCommands::IsBatchableAdd) submits
// them, in order, and waits. The first submission of a group posts a flush to the io_context:
// it runs after the handlers already queued there, which are the other reads that completed
// in the same poll, so what they submit joins the group. The flush applies the group with
// RespCommands::ApplyAdds and hands each connection its replies.
//
// Under --durability fsync (wait_durable) the flush applies the group through
// Engine::RunGathered, which does not wait for the sync, and answers once Engine::WhenDurable
// reports it synced (the engine's durability thread; the replies are posted back to the
// io_context), as the HTTP write gatherer does. If the sync fails, every SADD of the group is
// answered with that error. No thread waits per write.
//
// Thread safety: Submit from any thread. Flushes and answers run on an I/O thread, which calls
// each connection's `done` (the connection posts itself back to its strand). The destructor
// waits for the groups still waiting for durability to be posted (one sync).

#include <boost/asio/io_context.hpp>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "base/mutex.h"
#include "engine/engine.h"
#include "server/resp/resp_commands.h"

namespace segd::server::resp {

class AddGatherer {
 public:
  // Called with the replies of one submission, in its order.
  using Done = absl::AnyInvocable<void(std::string replies) &&>;
  // (key, member) of each SADD.
  using Adds = std::vector<std::pair<std::string, std::string>>;

  // `wait_durable`: acknowledge only what `engine` reports durable (fsync, above).
  AddGatherer(RespCommands& commands, engine::Engine& engine, boost::asio::io_context& ioc,
              bool wait_durable = false)
      : commands_(commands), engine_(engine), ioc_(ioc), wait_durable_(wait_durable) {}
  ~AddGatherer();
  AddGatherer(const AddGatherer&) = delete;
  AddGatherer& operator=(const AddGatherer&) = delete;

  void Submit(Adds adds, Done done) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Entry {
    Adds adds;
    Done done;
  };
  void Flush() ABSL_LOCKS_EXCLUDED(mu_);

  RespCommands& commands_;
  engine::Engine& engine_;
  boost::asio::io_context& ioc_;
  const bool wait_durable_;
  Mutex mu_;
  CondVar settled_;                                  // signalled when waiting_durable_ falls to 0
  size_t waiting_durable_ ABSL_GUARDED_BY(mu_) = 0;  // groups between WhenDurable and its post
  std::vector<Entry> pending_ ABSL_GUARDED_BY(mu_);
  bool flush_posted_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace segd::server::resp
