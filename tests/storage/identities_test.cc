// Aliases and merges against a brute-force model of people, each with its own id, its aliases
// and its memberships, through the engine and the log, across restarts. And a merge's rule
// state: the survivor's rules see both users' events, also after recovery.

#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/errors.h"
#include "gtest/gtest.h"
#include "storage/oplog.h"
#include "tests/testutil/temp_dir.h"

namespace segd::storage {
namespace {

using engine::Engine;
using engine::EngineOptions;
using engine::ManualClock;
using engine::TimeMs;
using testutil::TempDir;

constexpr TimeMs kStart = 1'800'000'000'000;
constexpr TimeMs kDay = 86'400'000;

struct Person {
  std::string own;
  std::set<std::string> aliases;
  std::map<std::string, TimeMs> segments;  // segment -> expiry
  bool merged = false;
};

class Model {
 public:
  // The person `name` resolves to, or -1.
  int Owner(const std::string& name) const {
    auto it = owner_.find(name);
    return it == owner_.end() ? -1 : it->second;
  }
  int NewPerson(const std::string& own) {
    people_.push_back({own, {}, {}, false});
    owner_[own] = static_cast<int>(people_.size()) - 1;
    return static_cast<int>(people_.size()) - 1;
  }
  void Add(const std::string& name, const std::string& segment, TimeMs expiry) {
    int p = Owner(name);
    if (p < 0) p = NewPerson(name);
    people_[p].segments[segment] = expiry;
  }
  void Alias(int p, const std::string& alias) {
    people_[p].aliases.insert(alias);
    owner_[alias] = p;
  }
  void Merge(int into, int from) {
    Person& a = people_[into];
    Person& b = people_[from];
    for (const auto& [segment, expiry] : b.segments) {
      auto it = a.segments.find(segment);
      if (it == a.segments.end()) {
        a.segments[segment] = expiry;
      } else if (it->second == engine::kNoExpiry || expiry == engine::kNoExpiry) {
        it->second = engine::kNoExpiry;
      } else {
        it->second = std::max(it->second, expiry);
      }
    }
    for (const std::string& name : b.aliases) Alias(into, name);
    Alias(into, b.own);
    b = {b.own, {}, {}, true};
  }
  void Unalias(int p, const std::string& alias) {
    people_[p].aliases.erase(alias);
    owner_.erase(alias);
  }
  const std::vector<Person>& people() const { return people_; }
  const std::map<std::string, int>& names() const { return owner_; }

 private:
  std::vector<Person> people_;
  std::map<std::string, int> owner_;
};

// Every name the model knows answers as its person: own id, aliases, memberships.
void ExpectEngineMatches(const Engine& engine, const Model& model, const std::string& when) {
  for (const auto& [name, p] : model.names()) {
    SCOPED_TRACE(when + ", name " + name);
    const Person& person = model.people()[p];
    ASSERT_EQ(engine.OwnName(name).value_or("(unknown)"), person.own);
    std::vector<std::string> aliases = engine.AliasesOf(name);
    EXPECT_EQ(std::set<std::string>(aliases.begin(), aliases.end()), person.aliases);
    std::map<std::string, TimeMs> segments;
    for (const engine::UserSegment& m : engine.UserSegments(name)) {
      segments[std::string(m.segment)] = m.expires_at;
    }
    EXPECT_EQ(segments, person.segments);
  }
}

TEST(Identities, AliasesAndMergesMatchAModelAcrossRestarts) {
  TempDir dir;
  ManualClock clock(kStart);
  auto log = std::make_unique<std::unique_ptr<OpLog>>(
      std::move(OpLog::Open(dir.path(), {.clock = &clock}).value()));
  auto engine = std::make_unique<Engine>(EngineOptions{&clock, log->get(), 1});
  const std::vector<std::string> segments = {"s0", "s1", "s2", "s3"};
  for (const std::string& s : segments) ASSERT_TRUE(engine->CreateSegment({.name = s}).ok());
  Model model;
  std::mt19937 rng(11);
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  int fresh = 0, merges = 0, unaliased = 0;
  std::vector<std::string> removed;  // aliases removed: their names may come back as users
  auto any_name = [&]() -> std::string {
    if (!removed.empty() && pick(8) == 0) {
      std::string name = removed.back();
      removed.pop_back();
      if (model.Owner(name) < 0) return name;
    }
    if (model.names().empty() || pick(5) == 0) return "n" + std::to_string(fresh++);
    auto it = model.names().begin();
    std::advance(it, pick(model.names().size()));
    return it->first;
  };
  for (int step = 0; step < 600; ++step) {
    clock.Advance(1);
    const int what = static_cast<int>(pick(10));
    if (what < 5) {  // a membership, by any name
      const std::string name = any_name();
      const std::string& segment = segments[pick(segments.size())];
      const TimeMs expiry =
          pick(3) == 0 ? engine::kNoExpiry : kStart + static_cast<TimeMs>(1 + pick(30)) * kDay;
      engine::UserUpdate update;
      update.add.push_back(
          {segment, std::nullopt,
           expiry == engine::kNoExpiry ? std::nullopt : std::optional<TimeMs>(expiry)});
      ASSERT_TRUE(engine->UpdateUserSegments(name, update).ok()) << step;
      model.Add(name, segment, expiry);
    } else if (what < 7) {  // a new alias
      const std::string name = any_name();
      const std::string alias = "x" + std::to_string(fresh++);
      auto r = engine->AddAliases(name, {alias}, false);
      ASSERT_TRUE(r.ok()) << r.status();
      int p = model.Owner(name);
      if (p < 0) p = model.NewPerson(name);
      model.Alias(p, alias);
    } else if (what < 9) {  // another person's name: refused, then merged
      if (model.names().size() < 2) continue;
      const std::string a = any_name(), b = any_name();
      const int pa = model.Owner(a), pb = model.Owner(b);
      if (pa < 0 || pb < 0 || pa == pb) continue;
      auto refused = engine->AddAliases(a, {b}, false);
      ASSERT_EQ(engine::ErrorCodeOf(refused.status()), "alias_taken");
      auto r = engine->AddAliases(a, {b}, true);
      ASSERT_TRUE(r.ok()) << r.status();
      ASSERT_EQ(r->merged, std::vector<std::string>{model.people()[pb].own});
      model.Merge(pa, pb);
      ++merges;
    } else {  // remove an alias
      std::vector<std::pair<int, std::string>> all;
      for (const auto& [name, p] : model.names()) {
        if (model.people()[p].own != name) all.emplace_back(p, name);
      }
      if (all.empty()) continue;
      const auto& [p, alias] = all[pick(all.size())];
      ASSERT_TRUE(engine->RemoveAlias(model.people()[p].own, alias).ok());
      removed.push_back(alias);
      model.Unalias(p, alias);
      ++unaliased;
    }
    ExpectEngineMatches(*engine, model, "step " + std::to_string(step));
    if (HasFailure()) return;
    if (step % 150 == 149) {
      engine.reset();
      log->reset();
      *log = std::move(OpLog::Open(dir.path(), {.clock = &clock}).value());
      engine = std::make_unique<Engine>(EngineOptions{&clock, log->get(), 1});
      auto recovered = (*log)->Recover(*engine);
      ASSERT_TRUE(recovered.ok()) << recovered.status();
      ExpectEngineMatches(*engine, model, "after a restart at step " + std::to_string(step));
      if (HasFailure()) return;
    }
  }
  EXPECT_GT(merges, 20);
  EXPECT_GT(unaliased, 10);
}

TEST(Identities, RefusedIdsTheCapAndAliasesOfUnknownUsers) {
  TempDir dir;
  auto log = std::move(OpLog::Open(dir.path(), {}).value());
  EngineOptions options{nullptr, log.get(), 1};
  options.max_aliases = 3;
  Engine engine(options);
  for (const char* bad : {"null", "NULL", "undefined", "0", "-1", "Anonymous"}) {
    EXPECT_EQ(engine::ErrorCodeOf(engine.AddAliases("u", {bad}, false).status()), "bad_request")
        << bad;
  }
  EXPECT_FALSE(engine.OwnName("u").has_value()) << "a refused request changed state";
  ASSERT_TRUE(engine.AddAliases("u", {"a1", "a2", "a3"}, false).ok());
  EXPECT_EQ(engine::ErrorCodeOf(engine.AddAliases("u", {"a4"}, false).status()), "conflict");
  // A merge whose aliases would pass the cap is refused whole.
  ASSERT_TRUE(engine.AddAliases("v", {"b1"}, false).ok());
  EXPECT_EQ(engine::ErrorCodeOf(engine.AddAliases("u", {"v"}, true).status()), "conflict");
  EXPECT_EQ(engine.OwnName("v").value_or(""), "v");
  EXPECT_EQ(engine::ErrorCodeOf(engine.RemoveAlias("u", "b1").status()), "not_found");
}

TEST(Identities, AMergedUsersEventsCountForTheSurvivorsRulesAlsoAfterRecovery) {
  TempDir dir;
  ManualClock clock(kStart);
  auto open = [&](std::unique_ptr<OpLog>& log, std::unique_ptr<Engine>& engine) {
    engine.reset();
    log.reset();
    log = std::move(OpLog::Open(dir.path(), {.clock = &clock}).value());
    EngineOptions options{&clock, log.get(), 1};
    options.events = log.get();
    engine = std::make_unique<Engine>(options);
    return log->Recover(*engine).status();
  };
  std::unique_ptr<OpLog> log;
  std::unique_ptr<Engine> engine;
  ASSERT_TRUE(open(log, engine).ok());
  ASSERT_TRUE(engine->CreateSegment({.name = "fans", .rule = "count(page_viewed, 7d) >= 3"}).ok());
  ASSERT_TRUE(engine->RunBackfills().ok());
  auto view = [&](const std::string& user, int n) {
    std::vector<engine::EventInput> events;
    for (int i = 0; i < n; ++i) events.push_back({user, "page_viewed", std::nullopt, {}, {}});
    ASSERT_TRUE(engine->Ingest(events).ok());
  };
  view("cookie", 2);
  view("login", 1);
  EXPECT_FALSE(engine->Check("fans", "login")->member);
  auto merged = engine->AddAliases("login", {"cookie"}, true);
  ASSERT_TRUE(merged.ok()) << merged.status();
  EXPECT_TRUE(engine->Check("fans", "login")->member) << "2 + 1 views after the merge";
  EXPECT_TRUE(engine->Check("fans", "cookie")->member) << "the alias names the survivor";
  ASSERT_TRUE(open(log, engine).ok());
  EXPECT_TRUE(engine->Check("fans", "login")->member);
  // The rule still counts the merged user's events: one more view is not needed, and the
  // state after recovery is the joined one (a new event keeps it true).
  view("cookie", 1);
  EXPECT_TRUE(engine->Check("fans", "login")->member);
  EXPECT_EQ(engine->OwnName("cookie").value_or(""), "login");
}

}  // namespace
}  // namespace segd::storage
