#include "server/detail/deadline_sweep.h"

#include <boost/asio/post.hpp>
#include <memory>

namespace segd::server::detail {

void DeadlineSweep::Arm() {
  timer_.expires_after(kPeriod);
  timer_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;  // cancelled: the server is being destroyed
    Sweep();
    Arm();
  });
}

void DeadlineSweep::Sweep() {
  for (std::shared_ptr<Connection>& c : registry_.PastDeadline(DeadlineNow())) {
    boost::asio::any_io_executor executor = c->executor();
    boost::asio::post(executor, [c = std::move(c)] {
      if (c->deadline() <= DeadlineNow()) c->OnDeadline();
    });
  }
}

}  // namespace segd::server::detail
