#include "server/metrics.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace segd::server {

Metrics::Metrics(std::vector<std::string> routes) : routes_(std::move(routes)) {
  routes_.push_back("unmatched");
  for (Stripe& stripe : stripes_) {
    stripe.routes = std::make_unique<Cells[]>(routes_.size());
    for (size_t r = 0; r < routes_.size(); ++r) {
      Cells& c = stripe.routes[r];
      for (auto& a : c.by_status) a.store(0, std::memory_order_relaxed);
      for (auto& a : c.buckets) a.store(0, std::memory_order_relaxed);
      c.sum_ns.store(0, std::memory_order_relaxed);
    }
  }
}

Metrics::~Metrics() = default;

size_t Metrics::StripeOfThisThread() {
  static std::atomic<size_t> next{0};
  thread_local size_t stripe = next.fetch_add(1, std::memory_order_relaxed) % kStripes;
  return stripe;
}

void Metrics::Record(int route, unsigned status, uint64_t nanos) {
  size_t r = route < 0 || static_cast<size_t>(route) >= routes_.size() - 1
                 ? routes_.size() - 1
                 : static_cast<size_t>(route);
  Cells& c = stripes_[StripeOfThisThread()].routes[r];
  size_t s = kStatuses.size() - 1;
  for (size_t i = 0; i + 1 < kStatuses.size(); ++i) {
    if (kStatuses[i] == status) {
      s = i;
      break;
    }
  }
  c.by_status[s].fetch_add(1, std::memory_order_relaxed);
  size_t b = std::lower_bound(kBucketsNs.begin(), kBucketsNs.end(), nanos) - kBucketsNs.begin();
  c.buckets[b].fetch_add(1, std::memory_order_relaxed);
  c.sum_ns.fetch_add(nanos, std::memory_order_relaxed);
}

uint64_t Metrics::Sum(size_t route, size_t field, bool bucket) const {
  uint64_t total = 0;
  for (const Stripe& stripe : stripes_) {
    const Cells& c = stripe.routes[route];
    total += (bucket ? c.buckets[field] : c.by_status[field]).load(std::memory_order_relaxed);
  }
  return total;
}

double Metrics::EstimateQuantileNs(int route, double q) const {
  size_t r = route < 0 ? routes_.size() - 1 : static_cast<size_t>(route);
  std::array<uint64_t, kBucketsNs.size() + 1> counts{};
  uint64_t total = 0;
  for (size_t b = 0; b < counts.size(); ++b) {
    counts[b] = Sum(r, b, true);
    total += counts[b];
  }
  if (total == 0) return 0;
  double rank = q * static_cast<double>(total);
  uint64_t seen = 0;
  for (size_t b = 0; b < counts.size(); ++b) {
    if (static_cast<double>(seen + counts[b]) >= rank && counts[b] > 0) {
      double lower = b == 0 ? 0 : static_cast<double>(kBucketsNs[b - 1]);
      if (b == kBucketsNs.size()) return lower;
      double upper = static_cast<double>(kBucketsNs[b]);
      double within = (rank - static_cast<double>(seen)) / static_cast<double>(counts[b]);
      return lower + (upper - lower) * within;
    }
    seen += counts[b];
  }
  return static_cast<double>(kBucketsNs.back());
}

void Metrics::AppendPrometheus(std::string* out) const {
  absl::StrAppend(out,
                  "# HELP segd_http_requests_total HTTP requests answered, by route and status.\n"
                  "# TYPE segd_http_requests_total counter\n");
  for (size_t r = 0; r < routes_.size(); ++r) {
    for (size_t s = 0; s < kStatuses.size(); ++s) {
      uint64_t n = Sum(r, s, false);
      if (n == 0) continue;
      std::string status = kStatuses[s] == 0 ? "other" : absl::StrCat(kStatuses[s]);
      absl::StrAppend(out, "segd_http_requests_total{route=\"", routes_[r], "\",status=\"", status,
                      "\"} ", n, "\n");
    }
  }
  absl::StrAppend(
      out,
      "# HELP segd_http_request_duration_seconds Server time per request, from the request "
      "parsed to its response queued.\n"
      "# TYPE segd_http_request_duration_seconds histogram\n");
  for (size_t r = 0; r < routes_.size(); ++r) {
    uint64_t cumulative = 0;
    uint64_t sum_ns = 0;
    for (const Stripe& stripe : stripes_) {
      sum_ns += stripe.routes[r].sum_ns.load(std::memory_order_relaxed);
    }
    std::string buckets;
    for (size_t b = 0; b <= kBucketsNs.size(); ++b) {
      cumulative += Sum(r, b, true);
      std::string le = b == kBucketsNs.size()
                           ? std::string("+Inf")
                           : absl::StrFormat("%g", static_cast<double>(kBucketsNs[b]) / 1e9);
      absl::StrAppend(&buckets, "segd_http_request_duration_seconds_bucket{route=\"", routes_[r],
                      "\",le=\"", le, "\"} ", cumulative, "\n");
    }
    if (cumulative == 0) continue;
    absl::StrAppend(out, buckets, "segd_http_request_duration_seconds_sum{route=\"", routes_[r],
                    "\"} ", absl::StrFormat("%.9f", static_cast<double>(sum_ns) / 1e9), "\n",
                    "segd_http_request_duration_seconds_count{route=\"", routes_[r], "\"} ",
                    cumulative, "\n");
  }
  absl::StrAppend(out,
                  "# HELP segd_http_request_duration_estimate_seconds Quantiles of server time "
                  "per request, interpolated from the histogram.\n"
                  "# TYPE segd_http_request_duration_estimate_seconds gauge\n");
  for (size_t r = 0; r < routes_.size(); ++r) {
    for (double q : {0.5, 0.99, 0.999}) {
      double ns = EstimateQuantileNs(static_cast<int>(r), q);
      if (ns == 0) continue;
      absl::StrAppend(out, "segd_http_request_duration_estimate_seconds{route=\"", routes_[r],
                      "\",quantile=\"", q, "\"} ", absl::StrFormat("%.9f", ns / 1e9), "\n");
    }
  }
  absl::StrAppend(
      out,
      "# HELP segd_http_connections_open Client connections open now.\n"
      "# TYPE segd_http_connections_open gauge\n"
      "segd_http_connections_open ",
      connections_open_.load(std::memory_order_relaxed), "\n",
      "# HELP segd_http_connections_total Client connections accepted.\n"
      "# TYPE segd_http_connections_total counter\n"
      "segd_http_connections_total ",
      connections_total_.load(std::memory_order_relaxed), "\n",
      "# HELP segd_http_connections_rejected_total Connections refused over --max-connections.\n"
      "# TYPE segd_http_connections_rejected_total counter\n"
      "segd_http_connections_rejected_total ",
      connections_rejected_.load(std::memory_order_relaxed), "\n",
      "# HELP segd_http_connections_timed_out_total Connections closed by --read-timeout.\n"
      "# TYPE segd_http_connections_timed_out_total counter\n"
      "segd_http_connections_timed_out_total ",
      connections_timed_out_.load(std::memory_order_relaxed), "\n");
  if (extra_) extra_(out);
}

}  // namespace segd::server
