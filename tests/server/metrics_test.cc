// Unit tests: Metrics: counts by route and status, quantile estimates.

#include "server/metrics.h"

#include "gtest/gtest.h"

namespace segd::server {
namespace {

TEST(Metrics, CountsByRouteAndStatusAndEstimatesQuantiles) {
  Metrics metrics({"check", "count"});
  for (int i = 0; i < 100; ++i) metrics.Record(0, 200, 1500);  // in the 1–2 µs bucket
  metrics.Record(0, 404, 800);
  metrics.Record(-1, 404, 100);
  std::string text;
  metrics.AppendPrometheus(&text);
  EXPECT_NE(text.find("segd_http_requests_total{route=\"check\",status=\"200\"} 100"),
            std::string::npos);
  EXPECT_NE(text.find("segd_http_requests_total{route=\"unmatched\",status=\"404\"} 1"),
            std::string::npos);
  EXPECT_NE(
      text.find("segd_http_request_duration_seconds_bucket{route=\"check\",le=\"2e-06\"} 101"),
      std::string::npos)
      << text;
  double median = metrics.EstimateQuantileNs(0, 0.5);
  EXPECT_GT(median, 1000);
  EXPECT_LE(median, 2000);
  EXPECT_EQ(metrics.EstimateQuantileNs(1, 0.5), 0);
}

}  // namespace
}  // namespace segd::server
