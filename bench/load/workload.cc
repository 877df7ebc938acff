#include "bench/load/workload.h"

#include <algorithm>
#include <cstdio>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace segd::load {

absl::StatusOr<Workload> ParseWorkload(absl::string_view name) {
  for (Workload w :
       {Workload::kCheck, Workload::kUserSegments, Workload::kCount, Workload::kBatchCheck,
        Workload::kQuery, Workload::kMixed, Workload::kAdd, Workload::kImport}) {
    if (name == WorkloadName(w)) return w;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown workload '", name,
      "'; one of check, user-segments, count, batch-check, query, mixed, add, import"));
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

RequestGenerator::RequestGenerator(const Dataset& dataset, WorkloadSpec spec, uint64_t seed)
    : dataset_(dataset), spec_(spec), rng_(seed) {
  double total = 0;
  for (uint32_t k = 1; k <= dataset.spec().segments; ++k) {
    total += 1.0 / k;
    zipf_cdf_.push_back(total);
  }
  for (double& c : zipf_cdf_) c /= total;
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
  }
}

}  // namespace segd::load
