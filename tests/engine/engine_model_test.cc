// A randomized model-based test: thousands of random operations applied to the engine and to a
// plain std::set/std::map model, compared after every step. At the end, the log the engine
// produced is replayed into a fresh engine, which must hold the same state.

#include <map>
#include <random>
#include <set>
#include <string>

#include "engine/engine.h"
#include "engine/errors.h"
#include "engine/stable_hash.h"
#include "gtest/gtest.h"
#include "tests/testutil/recording_sink.h"

namespace segd::engine {
namespace {

struct ModelSegment {
  bool active = true;
  int64_t ttl = 0;
  double percent = -1;
  bool sticky = false;
  std::map<std::string, TimeMs> members;  // user -> expiry (kNoExpiry for none)
};

class Model {
 public:
  std::map<std::string, ModelSegment> segments;
  std::set<std::string> registered;
  std::vector<std::string> first_seen;  // user order

  void See(const std::string& user, TimeMs now) {
    if (std::find(first_seen.begin(), first_seen.end(), user) == first_seen.end()) {
      first_seen.push_back(user);
    }
    if (registered.insert(user).second) {
      for (auto& [name, seg] : segments) {
        if (seg.active && seg.sticky && StickyPercentDecision(name, user, seg.percent)) {
          seg.members[user] = seg.ttl ? now + seg.ttl * 1000 : kNoExpiry;
        }
      }
    }
  }
  void Expire(TimeMs now) {
    for (auto& [name, seg] : segments) {
      for (auto it = seg.members.begin(); it != seg.members.end();) {
        // ProcessExpiries ends every membership whose expires_at is at or before now.
        if (it->second != kNoExpiry && it->second <= now) {
          it = seg.members.erase(it);
        } else {
          ++it;
        }
      }
    }
  }
};

class ModelTest : public ::testing::TestWithParam<uint64_t> {};

void CheckSame(const Engine& engine, const Model& model, const std::vector<std::string>& users) {
  uint64_t memberships = 0;
  for (const auto& [name, seg] : model.segments) {
    auto info = engine.GetSegment(name);
    ASSERT_TRUE(info.ok()) << name;
    ASSERT_EQ(info->meta.deleted(), !seg.active) << name;
    if (!seg.active) continue;
    ASSERT_EQ(info->user_count, seg.members.size()) << name;
    memberships += seg.members.size();
    for (const std::string& user : users) {
      auto m = engine.Check(name, user);
      ASSERT_TRUE(m.ok());
      auto it = seg.members.find(user);
      ASSERT_EQ(m->member, it != seg.members.end()) << name << " " << user;
      if (m->member) {
        ASSERT_EQ(m->expires_at, it->second) << name << " " << user;
      }
    }
    // Member listing in first-seen order.
    std::vector<std::string> want;
    for (const std::string& user : model.first_seen) {
      if (seg.members.count(user)) want.push_back(user);
    }
    auto page = engine.ListMembers(name, 100000, std::nullopt);
    ASSERT_TRUE(page.ok());
    ASSERT_EQ(page->users, want) << name;
  }
  for (const std::string& user : users) {
    std::vector<std::string> want;
    for (const auto& [name, seg] : model.segments) {
      if (seg.active && seg.members.count(user)) want.push_back(name);
    }
    std::vector<std::string> got;
    for (const UserSegment& s : engine.UserSegments(user)) got.emplace_back(s.segment);
    ASSERT_EQ(got, want) << user;
  }
  EngineStats stats = engine.Stats();
  ASSERT_EQ(stats.registered_users, model.registered.size());
  ASSERT_EQ(stats.memberships, memberships);
}

TEST_P(ModelTest, RandomOperationsMatchModel) {
  std::mt19937_64 rng(GetParam());
  const TimeMs start = 1'800'000'000'000;
  ManualClock clock(start);
  testutil::RecordingSink sink;
  Engine engine(EngineOptions{&clock, &sink, GetParam() + 1});
  Model model;
  std::vector<std::string> names = {"s0", "s1", "s2", "s3", "AND", "s.5"};
  std::vector<std::string> users;
  for (int i = 0; i < 30; ++i) users.push_back("user-" + std::to_string(i * 7919 % 1000));
  auto pick = [&](const std::vector<std::string>& v) { return v[rng() % v.size()]; };

  for (int step = 0; step < 1500; ++step) {
    TimeMs now = clock.NowMs();
    int op = rng() % 100;
    if (op < 35) {  // add/remove for one user
      std::string user = pick(users);
      UserUpdate update;
      std::set<std::string> used;
      int n = 1 + rng() % 3;
      for (int i = 0; i < n; ++i) {
        std::string seg = pick(names);
        if (!used.insert(seg).second) continue;
        if (rng() % 3 == 0) {
          update.remove.push_back(seg);
        } else {
          MembershipAdd add{seg};
          if (rng() % 2) add.ttl_seconds = 1 + rng() % 20;
          update.add.push_back(add);
        }
      }
      bool all_active = true;
      for (const auto& a : update.add)
        all_active &= model.segments.count(a.segment) && model.segments[a.segment].active;
      for (const auto& r : update.remove)
        all_active &= model.segments.count(r) && model.segments[r].active;
      auto r = engine.UpdateUserSegments(user, update);
      ASSERT_EQ(r.ok(), all_active) << r.status();
      if (!all_active) {
        ASSERT_EQ(ErrorCodeOf(r.status()), "segment_not_found");
        continue;
      }
      // The explicit adds win over sticky decisions made while registering.
      model.See(user, now);
      for (const auto& a : update.add) {
        ModelSegment& seg = model.segments[a.segment];
        int64_t ttl = a.ttl_seconds.value_or(seg.ttl);
        seg.members[user] = ttl ? now + ttl * 1000 : kNoExpiry;
      }
      for (const auto& name : update.remove) model.segments[name].members.erase(user);
    } else if (op < 45) {  // time passes
      clock.Advance(rng() % 8000);
      ASSERT_TRUE(engine.ProcessExpiries().ok());
      model.Expire(clock.NowMs());
    } else if (op < 52) {  // create or restore
      std::string name = pick(names);
      SegmentSpec spec{.name = name};
      if (rng() % 2) spec.ttl_seconds = 1 + rng() % 30;
      int kind = rng() % 3;
      if (kind > 0) spec.auto_percent = static_cast<double>(rng() % 101);
      spec.auto_percent_sticky = kind == 2;
      bool exists = model.segments.count(name) && model.segments[name].active;
      auto r = engine.CreateSegment(spec);
      ASSERT_EQ(r.ok(), !exists);
      if (exists) continue;
      ModelSegment seg;
      seg.ttl = spec.ttl_seconds.value_or(0);
      seg.percent = spec.auto_percent.value_or(-1);
      seg.sticky = spec.auto_percent_sticky;
      TimeMs expiry = seg.ttl ? now + seg.ttl * 1000 : kNoExpiry;
      if (kind == 2) {
        for (const auto& u : model.registered) {
          if (StickyPercentDecision(name, u, seg.percent)) seg.members[u] = expiry;
        }
      } else if (kind == 1) {
        // Random choice: check the count and the population, then adopt the engine's pick.
        uint64_t want =
            (model.registered.size() * static_cast<uint64_t>(seg.percent * 1000) + 50000) / 100000;
        ASSERT_EQ(r->user_count, want);
        for (const auto& u : model.registered) {
          if (engine.Check(name, u)->member) seg.members[u] = expiry;
        }
        ASSERT_EQ(seg.members.size(), want);
      }
      model.segments[name] = seg;
    } else if (op < 57) {  // delete segment
      std::string name = pick(names);
      bool active = model.segments.count(name) && model.segments[name].active;
      auto r = engine.DeleteSegment(name);
      ASSERT_EQ(r.ok(), active);
      if (!active) continue;
      ASSERT_EQ(*r, model.segments[name].members.size());
      model.segments[name].members.clear();
      model.segments[name].active = false;
    } else if (op < 62) {  // delete user
      std::string user = pick(users);
      auto r = engine.DeleteUser(user);
      ASSERT_EQ(r.ok(), model.registered.count(user) == 1);
      if (!r.ok()) continue;
      model.registered.erase(user);
      for (auto& [name, seg] : model.segments) seg.members.erase(user);
    } else if (op < 70) {  // register
      std::string user = pick(users);
      auto r = engine.RegisterUser(user);
      ASSERT_TRUE(r.ok());
      ASSERT_EQ(*r, model.registered.count(user) == 0);
      model.See(user, now);
    } else if (op < 80) {  // import
      std::string name = pick(names);
      bool active = model.segments.count(name) && model.segments[name].active;
      std::vector<ImportItem> items;
      int n = rng() % 5;
      for (int i = 0; i < n; ++i) {
        ImportItem item{pick(users)};
        if (rng() % 3 == 0) item.ttl_seconds = 1 + rng() % 10;
        items.push_back(item);
      }
      auto r = engine.Import(name, items, std::nullopt);
      ASSERT_EQ(r.ok(), active);
      if (!active) continue;
      // A line adds a user who was not a member (nor named on an earlier line); every other
      // line, a repeat included, updates.
      std::set<std::string> members_before;
      for (const auto& [user, expiry] : model.segments[name].members) members_before.insert(user);
      uint64_t want_added = 0;
      for (const auto& item : items) want_added += members_before.insert(item.user_id).second;
      EXPECT_EQ(r->added, want_added);
      EXPECT_EQ(r->updated, items.size() - want_added);
      for (const auto& item : items) {
        model.See(item.user_id, now);
        ModelSegment& seg = model.segments[name];
        int64_t ttl = item.ttl_seconds.value_or(seg.ttl);
        seg.members[item.user_id] = ttl ? now + ttl * 1000 : kNoExpiry;
      }
    } else {  // query
      std::string a = pick(names), b = pick(names);
      const char* ops[] = {"AND", "OR", "XOR", "AND NOT"};
      int k = rng() % 4;
      std::string expr = "\"" + a + "\" " + ops[k] + " \"" + b + "\"";
      bool known = model.segments.count(a) && model.segments[a].active && model.segments.count(b) &&
                   model.segments[b].active;
      auto r = engine.Query(expr, 1000);
      ASSERT_EQ(r.ok(), known) << expr;
      if (!known) continue;
      std::vector<std::string> want;
      for (const std::string& user : model.first_seen) {
        bool x = model.segments[a].members.count(user), y = model.segments[b].members.count(user);
        bool in = k == 0 ? (x && y) : k == 1 ? (x || y) : k == 2 ? (x != y) : (x && !y);
        if (in) want.push_back(user);
      }
      ASSERT_EQ(r->users, want) << expr;
      ASSERT_EQ(r->user_count, want.size());
    }
    CheckSame(engine, model, users);
  }

  // Replaying the log rebuilds the same state.
  ManualClock replay_clock(clock.NowMs());
  Engine replayed(EngineOptions{&replay_clock, nullptr, 1});
  for (const OpBatch& batch : sink.batches()) ASSERT_TRUE(replayed.ApplyRecovered(batch).ok());
  CheckSame(replayed, model, users);
  // And it keeps expiring what is pending.
  clock.Advance(3'600'000);
  replay_clock.Advance(3'600'000);
  ASSERT_TRUE(engine.ProcessExpiries().ok());
  ASSERT_TRUE(replayed.ProcessExpiries().ok());
  model.Expire(clock.NowMs());
  CheckSame(engine, model, users);
  CheckSame(replayed, model, users);
}

INSTANTIATE_TEST_SUITE_P(Seeds, ModelTest, ::testing::Values(1, 2, 3, 4, 5, 6, 7, 8),
                         [](const ::testing::TestParamInfo<uint64_t>& info) {
                           return "Seed" + std::to_string(info.param);
                         });

}  // namespace
}  // namespace segd::engine
