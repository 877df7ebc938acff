#include "bench/load/workload.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace segd::load {

absl::StatusOr<Workload> ParseWorkload(absl::string_view name) {
  for (Workload w :
       {Workload::kCheck, Workload::kUserSegments, Workload::kCount, Workload::kBatchCheck,
        Workload::kQuery, Workload::kMixed, Workload::kAdd, Workload::kImport, Workload::kEvents}) {
    if (name == WorkloadName(w)) return w;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown workload '", name,
      "'; one of check, user-segments, count, batch-check, query, mixed, add, import, events"));
}

const char* WorkloadName(Workload w) {
  switch (w) {
    case Workload::kCheck:
      return "check";
    case Workload::kUserSegments:
      return "user-segments";
    case Workload::kCount:
      return "count";
    case Workload::kBatchCheck:
      return "batch-check";
    case Workload::kQuery:
      return "query";
    case Workload::kMixed:
      return "mixed";
    case Workload::kAdd:
      return "add";
    case Workload::kImport:
      return "import";
    case Workload::kEvents:
      return "events";
  }
  return "?";
}

uint64_t Dataset::Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

std::string Dataset::UserId(uint64_t index) const {
  char buf[24];
  if (spec_.ids == IdFormat::kDecimal) {
    std::snprintf(buf, sizeof buf, "%012llu", static_cast<unsigned long long>(index));
    return buf;
  }
  std::snprintf(buf, sizeof buf, "u-%012llx",
                static_cast<unsigned long long>(Mix(spec_.seed ^ (index * 0x100000001b3ull)) &
                                                0xffffffffffffull));
  return buf;
}

std::string Dataset::Rule(uint32_t k, uint32_t event_types) {
  const std::string a = EventType((k - 1) % event_types);
  const std::string b = EventType((k + 2) % event_types);
  switch ((k - 1) % 5) {
    case 0:
      return absl::StrCat("count(", a, ", 7d) >= 3");
    case 1:
      return absl::StrCat("did(", a, ", 1h) AND NOT did(", b, ", 1d)");
    case 2:
      return absl::StrCat("sum(", a, ", properties.amount, 30d) >= 500");
    case 3:
      return absl::StrCat("trait.plan = \"pro\" AND count(", a,
                          " WHERE properties.device = \"mobile\", 1d) >= 2");
    default:
      return absl::StrCat("NOT did(", a, ", 10m) AND did(", b, ", 7d)");
  }
}

RequestGenerator::RequestGenerator(const Dataset& dataset, WorkloadSpec spec, uint64_t seed)
    : dataset_(dataset), spec_(spec), rng_(seed) {
  double total = 0;
  for (uint32_t k = 1; k <= dataset.spec().segments; ++k) {
    total += 1.0 / k;
    zipf_cdf_.push_back(total);
  }
  for (double& c : zipf_cdf_) c /= total;
  total = 0;
  for (uint32_t k = 1; k <= std::max<uint32_t>(spec_.event_types, 1); ++k) {
    total += 1.0 / k;
    type_cdf_.push_back(total);
  }
  for (double& c : type_cdf_) c /= total;
}

uint64_t RequestGenerator::ZipfUser() {
  // Inverse of the continuous law with density 1/x on [1, n+1): rank r has weight ~1/(r+1).
  const uint64_t n = dataset_.spec().users;
  const double u = std::uniform_real_distribution<double>(0, 1)(rng_);
  uint64_t rank = static_cast<uint64_t>(std::exp(u * std::log(static_cast<double>(n) + 1))) - 1;
  rank = std::min(rank, n - 1);
  // Ranks are spread over the users, so that the busy ones are not the first indexes.
  return Dataset::Mix(rank ^ (dataset_.spec().seed << 40)) % n;
}

void RequestGenerator::AppendEvent(std::string* out) {
  static constexpr const char* kDevices[] = {"mobile", "desktop", "tablet"};
  static constexpr const char* kCountries[] = {"US", "DE", "FR", "BR", "IN"};
  const double u = std::uniform_real_distribution<double>(0, 1)(rng_);
  const uint32_t type = static_cast<uint32_t>(
      std::lower_bound(type_cdf_.begin(), type_cdf_.end(), u) - type_cdf_.begin());
  absl::StrAppend(out, "{\"user_id\":\"", dataset_.UserId(ZipfUser()), "\",\"type\":\"",
                  Dataset::EventType(std::min<uint32_t>(type, spec_.event_types - 1)),
                  "\",\"properties\":{\"amount\":", rng_() % 200, ",\"device\":\"",
                  kDevices[rng_() % 3], "\"}");
  if (std::uniform_real_distribution<double>(0, 1)(rng_) < spec_.trait_fraction) {
    absl::StrAppend(out, ",\"traits\":{\"plan\":\"", rng_() % 4 == 0 ? "pro" : "free",
                    "\",\"country\":\"", kCountries[rng_() % 5], "\"}");
  }
  out->push_back('}');
}

uint32_t RequestGenerator::RandomSegment() {
  if (spec_.segment != 0) return spec_.segment;
  double u = std::uniform_real_distribution<double>(0, 1)(rng_);
  auto it = std::lower_bound(zipf_cdf_.begin(), zipf_cdf_.end(), u);
  return static_cast<uint32_t>(std::min<size_t>(it - zipf_cdf_.begin(), zipf_cdf_.size() - 1)) + 1;
}

void RequestGenerator::Get(std::string* out, const std::string& target) {
  absl::StrAppend(out, "GET ", target, " HTTP/1.1\r\nHost: segd\r\n\r\n");
}

void RequestGenerator::Post(std::string* out, const std::string& target, absl::string_view type,
                            const std::string& body) {
  absl::StrAppend(out, "POST ", target, " HTTP/1.1\r\nHost: segd\r\nContent-Type: ", type,
                  "\r\nContent-Length: ", body.size(), "\r\n\r\n", body);
}

void RequestGenerator::Append(std::string* out) {
  switch (spec_.workload) {
    case Workload::kCheck:
      Get(out, absl::StrCat("/v1/segments/", RandomSegmentName(), "/users/",
                            dataset_.UserId(RandomUser())));
      return;
    case Workload::kUserSegments:
      Get(out, absl::StrCat("/v1/users/", dataset_.UserId(RandomUser()), "/segments"));
      return;
    case Workload::kCount:
      Get(out, absl::StrCat("/v1/segments/", RandomSegmentName(), "/count"));
      return;
    case Workload::kBatchCheck: {
      std::string body = "{\"checks\":[";
      for (uint32_t i = 0; i < spec_.batch; ++i) {
        absl::StrAppend(&body, i ? "," : "", "{\"user_id\":\"", dataset_.UserId(RandomUser()),
                        "\",\"segment\":\"", RandomSegmentName(), "\"}");
      }
      body += "]}";
      Post(out, "/v1/check", "application/json", body);
      return;
    }
    case Workload::kQuery: {
      std::string expr = spec_.expr;
      if (expr.empty()) expr = absl::StrCat(RandomSegmentName(), " AND ", RandomSegmentName());
      Post(out, "/v1/query", "application/json", absl::StrCat("{\"expr\":\"", expr, "\"}"));
      return;
    }
    case Workload::kMixed: {
      bool write = std::uniform_real_distribution<double>(0, 1)(rng_) < spec_.write_fraction;
      if (!write) {
        spec_.workload = Workload::kCheck;
        Append(out);
        spec_.workload = Workload::kMixed;
        return;
      }
      std::string segment = RandomSegmentName();
      std::string body = rng_() % 2 ? absl::StrCat("{\"add\":[\"", segment, "\"]}")
                                    : absl::StrCat("{\"remove\":[\"", segment, "\"]}");
      Post(out, absl::StrCat("/v1/users/", dataset_.UserId(RandomUser()), "/segments"),
           "application/json", body);
      return;
    }
    case Workload::kAdd:
      Post(out, absl::StrCat("/v1/users/", dataset_.UserId(RandomUser()), "/segments"),
           "application/json", absl::StrCat("{\"add\":[\"", RandomSegmentName(), "\"]}"));
      return;
    case Workload::kImport: {
      std::string body;
      for (uint32_t i = 0; i < spec_.batch; ++i) {
        absl::StrAppend(&body, dataset_.UserId(RandomUser()), "\n");
      }
      Post(out, absl::StrCat("/v1/segments/", RandomSegmentName(), "/users:import"), "text/plain",
           body);
      return;
    }
    case Workload::kEvents: {
      std::string body;
      for (uint32_t i = 0; i < spec_.batch; ++i) {
        AppendEvent(&body);
        if (spec_.batch > 1) body.push_back('\n');
      }
      Post(out, "/v1/events", spec_.batch > 1 ? "application/x-ndjson" : "application/json", body);
      return;
    }
  }
}

}  // namespace segd::load
