#pragma once

// Compares everything observable about two engines: segments (metadata and counts), the
// registry, every membership of the given users with its expiry and added-at time, and member
// listings.

#include <string>
#include <vector>

#include "engine/engine.h"
#include "gtest/gtest.h"

namespace segd::testutil {

inline void ExpectSameState(const engine::Engine& a, const engine::Engine& b,
                            const std::vector<std::string>& users) {
  auto sa = a.ListSegments(true), sb = b.ListSegments(true);
  ASSERT_EQ(sa.size(), sb.size());
  for (size_t i = 0; i < sa.size(); ++i) {
    EXPECT_EQ(sa[i].meta, sb[i].meta);
    EXPECT_EQ(sa[i].user_count, sb[i].user_count) << sa[i].meta.name;
    if (sa[i].meta.deleted()) continue;
    auto pa = a.ListMembers(sa[i].meta.name, engine::Engine::kMaxPageLimit, std::nullopt);
    auto pb = b.ListMembers(sb[i].meta.name, engine::Engine::kMaxPageLimit, std::nullopt);
    ASSERT_TRUE(pa.ok() && pb.ok());
    EXPECT_EQ(pa->users, pb->users) << sa[i].meta.name;
  }
  EXPECT_EQ(a.Stats().registered_users, b.Stats().registered_users);
  EXPECT_EQ(a.Stats().known_users, b.Stats().known_users);
  EXPECT_EQ(a.Stats().pending_expiries, b.Stats().pending_expiries);
  for (const std::string& user : users) {
    auto ua = a.UserSegments(user), ub = b.UserSegments(user);
    ASSERT_EQ(ua.size(), ub.size()) << user;
    for (size_t i = 0; i < ua.size(); ++i) {
      EXPECT_EQ(ua[i].segment, ub[i].segment) << user;
      EXPECT_EQ(ua[i].expires_at, ub[i].expires_at) << user;
      EXPECT_EQ(ua[i].added_at, ub[i].added_at) << user << " in " << ua[i].segment;
    }
    EXPECT_EQ(a.FindUser(user), b.FindUser(user));
  }
}

}  // namespace segd::testutil
