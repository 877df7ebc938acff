#pragma once

// Metrics: request counters and latency histograms per route, connection counters, written out
// in the Prometheus text format.
//
// Recording is lock-free: counters are relaxed atomics striped per thread (each thread writes
// its own cache lines), summed when /metrics is read.
//
// Thread safety: every method may be called from any thread.

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace segd::server {

class Metrics {
 public:
  // Latency bucket upper bounds, in nanoseconds; a last implicit bucket is +Inf.
  static constexpr std::array<uint64_t, 24> kBucketsNs = {
      1000,     2000,     3000,      4000,      5000,      7500,       10000,      25000,
      50000,    100000,   250000,    500000,    1000000,   2500000,    5000000,    10000000,
      25000000, 50000000, 100000000, 250000000, 500000000, 1000000000, 2500000000, 10000000000};
  // Statuses counted by value; any other lands in "other".
  static constexpr std::array<unsigned, 17> kStatuses = {
      200, 201, 400, 401, 403, 404, 405, 408, 409, 413, 415, 422, 429, 431, 500, 503, 0};

  // `routes[i]` is the label of route id i.
  explicit Metrics(std::vector<std::string> routes);
  ~Metrics();

  // One request of route `route` (an id, or -1 for a path that matched no route) answered with
  // `status` after `nanos` of server time.
  void Record(int route, unsigned status, uint64_t nanos);
  void ConnectionOpened() {
    connections_open_.fetch_add(1, std::memory_order_relaxed);
    connections_total_.fetch_add(1, std::memory_order_relaxed);
  }
  void ConnectionClosed() { connections_open_.fetch_sub(1, std::memory_order_relaxed); }
  void ConnectionRejected() { connections_rejected_.fetch_add(1, std::memory_order_relaxed); }
  void ConnectionTimedOut() { connections_timed_out_.fetch_add(1, std::memory_order_relaxed); }
  int64_t connections_open() const { return connections_open_.load(std::memory_order_relaxed); }
  uint64_t connections_total() const { return connections_total_.load(std::memory_order_relaxed); }
  uint64_t connections_rejected() const {
    return connections_rejected_.load(std::memory_order_relaxed);
  }

  // Appends the HTTP metrics (segd_http_*), each with HELP and TYPE lines, then the extra
  // families.
  void AppendPrometheus(std::string* out) const;
  // More families for /metrics (the RESP front's). Set before the server starts.
  void set_extra(std::function<void(std::string*)> extra) { extra_ = std::move(extra); }

  // The estimated q-quantile (0 < q < 1) of a route's latency in nanoseconds, interpolated
  // within its histogram bucket; 0 when the route has no requests.
  double EstimateQuantileNs(int route, double q) const;

 private:
  static constexpr size_t kStripes = 8;
  struct Cells {
    std::atomic<uint64_t> by_status[kStatuses.size()];
    std::atomic<uint64_t> buckets[kBucketsNs.size() + 1];
    std::atomic<uint64_t> sum_ns;
  };
  struct alignas(64) Stripe {
    std::unique_ptr<Cells[]> routes;  // routes_.size() + 1 (the last is "unmatched")
  };
  static size_t StripeOfThisThread();
  uint64_t Sum(size_t route, size_t field, bool bucket) const;

  std::vector<std::string> routes_;
  std::array<Stripe, kStripes> stripes_;
  std::function<void(std::string*)> extra_;
  std::atomic<int64_t> connections_open_{0};
  std::atomic<uint64_t> connections_total_{0};
  std::atomic<uint64_t> connections_rejected_{0};
  std::atomic<uint64_t> connections_timed_out_{0};
};

}  // namespace segd::server
