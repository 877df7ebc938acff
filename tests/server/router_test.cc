// Unit tests: Router: matching, captures, allowed methods; percent-decoding.

#include "server/router.h"

#include "gtest/gtest.h"

namespace segd::server {
namespace {

TEST(Router, MatchesCapturesAndReportsAllowedMethods) {
  Router router;
  router.Add("GET", "/v1/segments/{name}/users/{user_id}", 1);
  router.Add("POST", "/v1/segments/{name}/users:import", 2);
  router.Add("GET", "/v1/reports/{id}.csv", 3);
  router.Add("DELETE", "/v1/segments/{name}/users/{user_id}", 4);

  RouteMatch m = router.Match("GET", "/v1/segments/sport/users/a%2Fb%40c%20d");
  ASSERT_EQ(m.kind, RouteMatch::Kind::kFound);
  EXPECT_EQ(m.route, 1);
  EXPECT_EQ(m.params, (std::vector<std::string>{"sport", "a/b@c d"}));

  m = router.Match("POST", "/v1/segments/sport/users:import");
  EXPECT_EQ(m.route, 2);
  m = router.Match("GET", "/v1/reports/abc.csv");
  EXPECT_EQ(m.params, (std::vector<std::string>{"abc"}));
  EXPECT_EQ(router.Match("GET", "/v1/reports/abc.txt").kind, RouteMatch::Kind::kNoPath);

  m = router.Match("PUT", "/v1/segments/s/users/u");
  EXPECT_EQ(m.kind, RouteMatch::Kind::kWrongMethod);
  EXPECT_EQ(m.allow, "GET, DELETE");
  EXPECT_EQ(router.Match("GET", "/v1/segments/s/users/%4").error.code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(router.Match("GET", "relative").kind, RouteMatch::Kind::kNoPath);
  EXPECT_EQ(router.Match("GET", "/a/b/c/d/e/f/g/h/i/j").kind, RouteMatch::Kind::kNoPath);
}

TEST(PercentDecode, PlusIsSpaceOnlyInQueries) {
  std::string out;
  ASSERT_TRUE(PercentDecode("a+b%2B", true, &out).ok());
  EXPECT_EQ(out, "a b+");
  ASSERT_TRUE(PercentDecode("a+b", false, &out).ok());
  EXPECT_EQ(out, "a+b");
  EXPECT_FALSE(PercentDecode("%", false, &out).ok());
  EXPECT_FALSE(PercentDecode("%g0", false, &out).ok());
  EXPECT_FALSE(PercentDecode("ab%2", false, &out).ok());
}

}  // namespace
}  // namespace segd::server
