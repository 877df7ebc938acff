// Unit tests: The served OpenAPI document against the routing table.

#include "server/openapi.h"

#include "absl/strings/ascii.h"
#include "gtest/gtest.h"
#include "server/api.h"
#include "server/router.h"

namespace segd::server {
namespace {

TEST(OpenApi, DescribesEveryRouteWithItsMethod) {
  std::string yaml = kOpenApiYaml;
  for (const auto& [method, pattern] : Api::Routes()) {
    size_t path = yaml.find("\n  " + pattern + ":\n");
    ASSERT_NE(path, std::string::npos) << pattern << " is missing from docs/openapi.yaml";
    size_t next_path = yaml.find("\n  /", path + 1);
    size_t op = yaml.find("\n    " + absl::AsciiStrToLower(method) + ":\n", path);
    EXPECT_LT(op, next_path) << method << " " << pattern << " is missing from docs/openapi.yaml";
  }
}

}  // namespace
}  // namespace segd::server
