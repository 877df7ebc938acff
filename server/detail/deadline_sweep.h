#pragma once

// DeadlineSweep: enforces the deadlines of the server's connections (connection.h). Every
// kPeriod a timer on the server's io_context asks the registry for the connections past their
// deadline and posts OnDeadline to each one's executor, which checks the deadline again first:
// the operation may have completed, or a new one started with a later deadline, in between.
// A limit therefore fires between 0 and about kPeriod after it passed.
//
// Thread safety: Start once, before the io_context runs; the sweeps run on an I/O thread.
// The io_context must outlive the sweep (declare it first).

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>

#include "server/detail/connection.h"

namespace segd::server::detail {

class DeadlineSweep {
 public:
  static constexpr std::chrono::milliseconds kPeriod{100};

  DeadlineSweep(boost::asio::io_context& ioc, SessionRegistry& registry)
      : timer_(ioc), registry_(registry) {}
  DeadlineSweep(const DeadlineSweep&) = delete;
  DeadlineSweep& operator=(const DeadlineSweep&) = delete;

  // Starts sweeping; it goes on until the io_context stops.
  void Start() { Arm(); }

 private:
  void Arm();
  void Sweep();

  boost::asio::steady_timer timer_;
  SessionRegistry& registry_;
};

}  // namespace segd::server::detail
