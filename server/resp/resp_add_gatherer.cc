#include "server/resp/resp_add_gatherer.h"

#include <boost/asio/post.hpp>

#include "absl/strings/str_cat.h"
#include "server/resp/resp_writer.h"

namespace segd::server::resp {

AddGatherer::~AddGatherer() {
  MutexLock lock(&mu_);
  settled_.Wait(&mu_, [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return waiting_durable_ == 0; });
}

void AddGatherer::Submit(Adds adds, Done done) {
  bool post = false;
  {
    MutexLock lock(&mu_);
    pending_.push_back({std::move(adds), std::move(done)});
    if (!flush_posted_) {
      flush_posted_ = true;
      post = true;
    }
  }
  if (post) boost::asio::post(ioc_, [this] { Flush(); });
}

void AddGatherer::Flush() {
  std::vector<Entry> group;
  {
    MutexLock lock(&mu_);
    group.swap(pending_);
    flush_posted_ = false;
  }
  std::vector<std::string> replies(group.size());
  std::vector<RespCommands::PendingAdd> adds;
  for (size_t i = 0; i < group.size(); ++i) {
    for (const auto& [key, member] : group[i].adds) adds.push_back({key, member, &replies[i]});
  }
  if (!wait_durable_) {
    commands_.ApplyAdds(adds);
    for (size_t i = 0; i < group.size(); ++i) std::move(group[i].done)(std::move(replies[i]));
    return;
  }
  // One commit, not waited for here: the answers wait for the sync instead.
  engine_.RunGathered(1, [&](size_t) { commands_.ApplyAdds(adds); });
  {
    MutexLock lock(&mu_);
    ++waiting_durable_;
  }
  engine_.WhenDurable(
      [this, group = std::move(group), replies = std::move(replies)](absl::Status status) mutable {
        boost::asio::post(ioc_, [group = std::move(group), replies = std::move(replies),
                                 status = std::move(status)]() mutable {
          for (size_t i = 0; i < group.size(); ++i) {
            if (!status.ok()) {
              // Nothing of the group is known to be on disk: every SADD of it gets the error.
              replies[i].clear();
              RespWriter out(&replies[i], 2);
              for (size_t k = 0; k < group[i].adds.size(); ++k) {
                out.Error(absl::StrCat("ERR ", status.message()));
              }
            }
            std::move(group[i].done)(std::move(replies[i]));
          }
        });
        MutexLock lock(&mu_);
        if (--waiting_durable_ == 0) settled_.SignalAll();
      });
}

}  // namespace segd::server::resp
