#include "server/resp/resp_add_gatherer.h"

#include <boost/asio/post.hpp>

namespace segd::server::resp {

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
  commands_.ApplyAdds(adds);
  for (size_t i = 0; i < group.size(); ++i) std::move(group[i].done)(std::move(replies[i]));
}

}  // namespace segd::server::resp
