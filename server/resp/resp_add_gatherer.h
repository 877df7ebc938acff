#pragma once

// AddGatherer: single-member SADDs of many RESP connections applied as one engine batch, so
// that the SADDs which arrive in one pass of the event loop cost one log write, not one each
// (Redis likewise writes its AOF once per pass).
//
// A connection that has parsed single-member SADDs (RespCommands::IsBatchableAdd) submits
// them, in order, and waits. The first submission of a group posts a flush to the io_context:
// it runs after the handlers already queued there, which are the other reads that completed
// in the same poll, so what they submit joins the group. The flush applies the group with
// RespCommands::ApplyAdds and hands each connection its replies. Used with --durability
// process; under fsync, writes go to the durable-write workers, whose write queue groups them.
//
// Thread safety: Submit from any thread. The flush runs on an I/O thread and calls each
// connection's `done` there (the connection posts itself back to its strand).

#include <boost/asio/io_context.hpp>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "base/mutex.h"
#include "server/resp/resp_commands.h"

namespace segd::server::resp {

class AddGatherer {
 public:
  // Called with the replies of one submission, in its order.
  using Done = absl::AnyInvocable<void(std::string replies) &&>;
  // (key, member) of each SADD.
  using Adds = std::vector<std::pair<std::string, std::string>>;

  AddGatherer(RespCommands& commands, boost::asio::io_context& ioc)
      : commands_(commands), ioc_(ioc) {}
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
  boost::asio::io_context& ioc_;
  Mutex mu_;
  std::vector<Entry> pending_ ABSL_GUARDED_BY(mu_);
  bool flush_posted_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace segd::server::resp
