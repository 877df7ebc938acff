#include "engine/user_dictionary.h"

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "engine/errors.h"
#include "gtest/gtest.h"

namespace segd::engine {
namespace {

TEST(UserDictionaryTest, IdsAreDenseInFirstSeenOrder) {
  UserDictionary dict;
  bool inserted = false;
  EXPECT_EQ(*dict.Insert("alice", &inserted), 0u);
  EXPECT_TRUE(inserted);
  EXPECT_EQ(*dict.Insert("bob"), 1u);
  EXPECT_EQ(*dict.Insert("alice", &inserted), 0u);
  EXPECT_FALSE(inserted);
  EXPECT_EQ(dict.size(), 2u);
  EXPECT_EQ(dict.Name(1), "bob");
  EXPECT_EQ(dict.Find("bob"), 1u);
  EXPECT_FALSE(dict.Find("carol").has_value());
}

TEST(UserDictionaryTest, ManyUsersRoundTrip) {
  UserDictionary dict;
  const int n = 300000;  // several arena blocks and name-table chunks
  for (int i = 0; i < n; ++i) ASSERT_EQ(*dict.Insert("user-" + std::to_string(i)), UserId(i));
  for (int i = 0; i < n; i += 997) {
    EXPECT_EQ(dict.Name(i), "user-" + std::to_string(i));
    EXPECT_EQ(dict.Find("user-" + std::to_string(i)), UserId(i));
  }
}

// The index keeps 32 bits of each name's hash and tells names apart by reading the name itself
// when those bits match. Two names meet only if they also land in the same of the 64 index
// shards (the hash's top 6 bits): among 2,000,000 names about seven pairs agree on all 38 bits
// (the dictionary hashes with absl::HashOf, as here). Each name of such a pair must still find
// its own id.
TEST(UserDictionaryTest, NamesWhoseStoredHashBitsCollideFindTheirOwnIds) {
  UserDictionary dict;
  const int n = 2000000;
  absl::flat_hash_map<uint64_t, int> first_with_bits;
  std::vector<std::pair<int, int>> colliding;
  for (int i = 0; i < n; ++i) {
    const std::string name = "collide-" + std::to_string(i);
    ASSERT_EQ(*dict.Insert(name), UserId(i));
    const uint64_t hash = absl::HashOf(absl::string_view(name));
    const uint64_t bits = (hash >> 58) << 32 | (hash & 0xffffffff);
    auto [it, fresh] = first_with_bits.try_emplace(bits, i);
    if (!fresh) colliding.emplace_back(it->second, i);
  }
  ASSERT_FALSE(colliding.empty()) << "no two names shared 38 hash bits; the test proves nothing";
  for (const auto& [a, b] : colliding) {
    EXPECT_EQ(dict.Find("collide-" + std::to_string(a)), UserId(a));
    EXPECT_EQ(dict.Find("collide-" + std::to_string(b)), UserId(b));
  }
}

TEST(UserDictionaryTest, AcceptsOddButValidIds) {
  UserDictionary dict;
  std::string longest(256, 'x');
  for (std::string id :
       {std::string("a@b.c"), std::string("with space"), std::string("a/b%20"),
        std::string("\xc3\xa9t\xc3\xa9"), std::string("\xf0\x9f\x98\x80"), longest}) {
    auto r = dict.Insert(id);
    ASSERT_TRUE(r.ok()) << id << ": " << r.status();
    EXPECT_EQ(dict.Name(*r), id);
  }
}

TEST(UserDictionaryTest, RejectsBadIds) {
  for (std::string id :
       {std::string(), std::string(257, 'x'), std::string("tab\there"), std::string("nl\n"),
        std::string("\x7f"), std::string("\xc2\x85"), std::string("\xff"), std::string("\xc3"),
        std::string("\xe0\x80\x80"), std::string("\xed\xa0\x80"), std::string("nul\0x", 5)}) {
    absl::Status s = UserDictionary::Validate(id);
    EXPECT_FALSE(s.ok()) << "accepted: " << id;
    EXPECT_EQ(ErrorCodeOf(s), "bad_request");
  }
  UserDictionary dict;
  EXPECT_FALSE(dict.Insert("").ok());
  EXPECT_EQ(dict.size(), 0u);
}

TEST(UserDictionaryTest, InsertConsecutiveMatchesOneByOneInsertion) {
  UserDictionary batched;
  UserDictionary single;
  std::vector<std::string> first_block;
  std::vector<absl::string_view> first_views;
  // 100,000 names: each index shard gets more than one lock hold's worth (1,024).
  constexpr int kFirst = 100'000;
  for (int i = 0; i < kFirst; ++i) first_block.push_back("user-" + std::to_string(i * 7919));
  for (const std::string& name : first_block) first_views.push_back(name);
  std::vector<std::string> second_block = {"x", "y", "\xc3\xa9t\xc3\xa9"};
  std::vector<absl::string_view> second_views(second_block.begin(), second_block.end());
  std::vector<std::string> third_block = {"solo"};  // one name: the single-user path
  ASSERT_TRUE(batched.InsertConsecutive(0, first_views).ok());
  ASSERT_TRUE(batched.InsertConsecutive(kFirst, second_views).ok());
  ASSERT_TRUE(batched.InsertConsecutive(kFirst + 3, std::vector<absl::string_view>{"solo"}).ok());
  for (const auto* block : {&first_block, &second_block, &third_block}) {
    for (const std::string& name : *block) ASSERT_TRUE(single.Insert(name).ok());
  }
  ASSERT_EQ(batched.size(), single.size());
  for (UserId id = 0; id < single.size(); ++id) {
    ASSERT_EQ(batched.Name(id), single.Name(id));
    ASSERT_EQ(batched.Find(single.Name(id)), id);
  }
  EXPECT_FALSE(batched.Find("user-1").has_value());
  // Later inserts continue after the recovered ids.
  EXPECT_EQ(*batched.Insert("new"), kFirst + 4u);
}

TEST(UserDictionaryTest, InsertConsecutiveRejectsGapsRepeatsAndBadNames) {
  UserDictionary dict;
  ASSERT_TRUE(dict.InsertConsecutive(0, std::vector<absl::string_view>{"a", "b"}).ok());
  EXPECT_EQ(dict.InsertConsecutive(3, std::vector<absl::string_view>{"c"}).code(),
            absl::StatusCode::kDataLoss);
  UserDictionary repeats;
  EXPECT_EQ(repeats.InsertConsecutive(0, std::vector<absl::string_view>{"a", "b", "a"}).code(),
            absl::StatusCode::kDataLoss);
  UserDictionary known;
  ASSERT_TRUE(known.InsertConsecutive(0, std::vector<absl::string_view>{"a"}).ok());
  EXPECT_EQ(known.InsertConsecutive(1, std::vector<absl::string_view>{"a"}).code(),
            absl::StatusCode::kDataLoss);
  UserDictionary bad;
  EXPECT_EQ(
      bad.InsertConsecutive(0, std::vector<absl::string_view>{"ok", absl::string_view("a\0b", 3)})
          .code(),
      absl::StatusCode::kDataLoss);
}

}  // namespace
// Aliases: another name for an id; a merged user's own name leaves the index and becomes an
// alias of the survivor; readers may look names up while the writer changes aliases.
TEST(UserDictionaryTest, AliasesResolveAndReadersSeeNoGap) {
  UserDictionary dict;
  ASSERT_EQ(*dict.Insert("a"), 0u);
  ASSERT_EQ(*dict.Insert("b"), 1u);
  dict.SetAlias("cookie", 0);
  EXPECT_EQ(dict.Find("cookie"), std::optional<UserId>(0));
  EXPECT_EQ(dict.AliasesOf(0), std::vector<std::string>{"cookie"});
  // b merged into a: its name now names a, though its id keeps its name for history.
  dict.SetAlias("b", 0);
  EXPECT_EQ(dict.Find("b"), std::optional<UserId>(0));
  EXPECT_EQ(dict.Name(1), "b");
  EXPECT_EQ(dict.AliasesOf(0), (std::vector<std::string>{"b", "cookie"}));
  // Inserting an alias's name finds the user it names.
  bool inserted = true;
  EXPECT_EQ(*dict.Insert("cookie", &inserted), 0u);
  EXPECT_FALSE(inserted);
  EXPECT_TRUE(dict.RemoveAlias("cookie"));
  EXPECT_FALSE(dict.Find("cookie").has_value());
  EXPECT_FALSE(dict.RemoveAlias("cookie"));

  // One writer moves aliases among users while readers look every name up: a user's own name
  // is always found, and an alias names one of the users it was given to.
  for (int i = 2; i < 50; ++i) ASSERT_TRUE(dict.Insert("u" + std::to_string(i)).ok());
  std::atomic<bool> stop{false};
  std::atomic<int> wrong{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&] {
      while (!stop.load()) {
        for (int i = 2; i < 50; ++i) {
          if (dict.Find("u" + std::to_string(i)) != std::optional<UserId>(i)) wrong.fetch_add(1);
          auto alias = dict.Find("x" + std::to_string(i));
          if (alias && *alias != static_cast<UserId>(i) && *alias != static_cast<UserId>(i + 1)) {
            wrong.fetch_add(1);
          }
        }
      }
    });
  }
  for (int round = 0; round < 200; ++round) {
    for (int i = 2; i < 49; ++i) {
      const std::string alias = "x" + std::to_string(i);
      dict.SetAlias(alias, static_cast<UserId>(round % 2 == 0 ? i : i + 1));
      if (round % 3 == 0) dict.RemoveAlias(alias);
    }
  }
  stop.store(true);
  for (std::thread& t : readers) t.join();
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace segd::engine
