#include "server/resp/resp_commands.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "server/access/authenticator.h"
#include "server/access/key_store.h"
#include "server/resp/resp_context.h"
#include "tests/testutil/resp_reply.h"
#include "tests/testutil/temp_dir.h"

namespace segd::server::resp {
namespace {

using testutil::RespReply;
using Args = std::vector<std::string>;

class RespCommandsTest : public ::testing::Test {
 protected:
  RespCommandsTest() : metrics_({"x"}) { Rebuild(); }

  void Rebuild(access::Authenticator* auth = nullptr, bool enforce = false) {
    commands_ = std::make_unique<RespCommands>(engine_, config_, metrics_, auth, enforce);
  }

  RespReply Run(RespClient& client, const Args& args) {
    std::vector<absl::string_view> views(args.begin(), args.end());
    std::string out;
    commands_->Execute(client, views, &out);
    std::vector<RespReply> replies = testutil::DecodeAllResp(out);
    EXPECT_EQ(replies.size(), 1u) << "raw: " << out;
    return replies.empty() ? RespReply{} : replies[0];
  }
  RespReply Run(const Args& args) { return Run(client_, args); }
  std::string Text(const Args& args) { return Run(args).ToString(); }

  engine::Engine engine_;
  ServerConfig config_;
  Metrics metrics_;
  std::unique_ptr<RespCommands> commands_;
  RespClient client_;
};

TEST_F(RespCommandsTest, SetCommandsActOnSegmentsWithRedisReplies) {
  const RespReply refused = Run({"SADD", "s", "u1"});
  ASSERT_TRUE(refused.is_error());
  EXPECT_NE(refused.text.find("does not exist"), std::string::npos) << refused.text;
  EXPECT_NE(refused.text.find("SEGD.CREATE s"), std::string::npos) << refused.text;

  EXPECT_EQ(Text({"SEGD.CREATE", "s"}), "OK");
  EXPECT_EQ(Text({"sadd", "s", "u1", "u2", "u2"}), "2");  // any case; repeats count once
  EXPECT_EQ(Text({"SADD", "s", "u1"}), "0");
  EXPECT_EQ(Text({"SADD", "s", "u3"}), "1");
  EXPECT_EQ(Text({"SISMEMBER", "s", "u2"}), "1");
  EXPECT_EQ(Text({"SISMEMBER", "s", "nobody"}), "0");
  EXPECT_EQ(Text({"SMISMEMBER", "s", "u1", "x", "u3"}), "[1, 0, 1]");
  EXPECT_EQ(Text({"SCARD", "s"}), "3");
  EXPECT_EQ(Text({"SREM", "s", "u1", "x", "u1"}), "1");
  EXPECT_EQ(Text({"SMEMBERS", "s"}), "[u2, u3]");
  EXPECT_EQ(Text({"TYPE", "s"}), "set");
  EXPECT_EQ(Text({"EXISTS", "s", "missing", "s"}), "2");
  EXPECT_EQ(Text({"DBSIZE"}), "1");

  // A key that names no segment (or no valid name) is an empty set, as in Redis.
  for (const std::string& key :
       std::vector<std::string>{"missing", "bad name!", std::string(300, 'k')}) {
    EXPECT_EQ(Text({"SISMEMBER", key, "u2"}), "0");
    EXPECT_EQ(Text({"SCARD", key}), "0");
    EXPECT_EQ(Text({"SMEMBERS", key}), "[]");
    EXPECT_EQ(Text({"SREM", key, "u2"}), "0");
    EXPECT_EQ(Text({"TYPE", key}), "none");
    EXPECT_EQ(Text({"SSCAN", key, "0"}), "[0, []]");
  }
  EXPECT_EQ(Text({"SINTER", "s", "missing"}), "[]");
  EXPECT_EQ(Text({"SUNION", "s", "missing"}), "[u2, u3]");
  EXPECT_EQ(Text({"SDIFF", "missing", "s"}), "[]");
  EXPECT_EQ(Text({"SDIFF", "s", "missing"}), "[u2, u3]");

  // A malformed member refuses the whole SADD.
  const RespReply bad = Run({"SADD", "s", "u9", std::string(300, 'x')});
  ASSERT_TRUE(bad.is_error());
  EXPECT_EQ(Text({"SISMEMBER", "s", "u9"}), "0");
}

TEST_F(RespCommandsTest, SegdCommandsAddWithTtlListAndQuery) {
  EXPECT_EQ(Text({"SEGD.CREATE", "a", "TTL", "3600"}), "OK");
  EXPECT_TRUE(Run({"SEGD.CREATE", "a"}).is_error());  // exists
  EXPECT_EQ(Text({"SEGD.CREATE", "b"}), "OK");
  EXPECT_EQ(Text({"SEGD.ADD", "b", "u1", "TTL", "60"}), "1");
  EXPECT_EQ(Text({"SEGD.ADD", "b", "u1", "TTL", "120"}), "0");  // renewed
  auto m = engine_.Check("b", "u1");
  ASSERT_TRUE(m.ok());
  EXPECT_NEAR(static_cast<double>(m->expires_at - engine_.ClockNow()), 120000.0, 5000.0);
  EXPECT_EQ(Text({"SADD", "a", "u1", "u2"}), "2");
  auto a = engine_.Check("a", "u2");
  EXPECT_NEAR(static_cast<double>(a->expires_at - engine_.ClockNow()), 3600000.0, 5000.0)
      << "SADD applies the segment's default TTL";
  EXPECT_TRUE(Run({"SEGD.ADD", "b", "u1", "TTL", "0"}).is_error());
  EXPECT_TRUE(Run({"SEGD.ADD", "b", "u1", "EXPIRE", "5"}).is_error());
  EXPECT_EQ(Text({"SEGD.USERSEGMENTS", "u1"}), "[a, b]");
  EXPECT_EQ(Text({"SEGD.USERSEGMENTS", "nobody"}), "[]");
  EXPECT_EQ(Text({"SEGD.QUERY", "a AND NOT b"}), "[user_count, 1, users, []]");
  EXPECT_EQ(Text({"SEGD.QUERY", "a AND NOT b", "LIMIT", "10"}), "[user_count, 1, users, [u2]]");
  const RespReply syntax = Run({"SEGD.QUERY", "a AND"});
  ASSERT_TRUE(syntax.is_error());
  EXPECT_EQ(Text({"SINTERCARD", "2", "a", "b"}), "1");
  EXPECT_EQ(Text({"SINTERCARD", "1", "a", "LIMIT", "1"}), "1");
  EXPECT_EQ(Text({"SINTERCARD", "1", "a", "LIMIT", "0"}), "2");
}

TEST_F(RespCommandsTest, ErrorsReadAsRedisErrors) {
  EXPECT_EQ(Text({"FLUSHALL"}), "-ERR unknown command 'FLUSHALL', with args beginning with: ");
  EXPECT_EQ(Text({"GET", "k"}), "-ERR unknown command 'GET', with args beginning with: 'k' ");
  EXPECT_EQ(Text({"SISMEMBER", "s"}), "-ERR wrong number of arguments for 'sismember' command");
  EXPECT_EQ(Text({"SCARD"}), "-ERR wrong number of arguments for 'scard' command");
  EXPECT_EQ(Text({"SELECT", "0"}), "OK");
  EXPECT_TRUE(Run({"SELECT", "1"}).is_error());
  EXPECT_EQ(Text({"SEGD.CREATE", "s"}), "OK");
  EXPECT_EQ(Text({"SSCAN", "s", "x"}), "-ERR invalid cursor");
  EXPECT_EQ(Text({"SSCAN", "s", "0", "COUNT", "0"}), "-ERR syntax error");
  EXPECT_EQ(Text({"SSCAN", "s", "0", "MATCH"}), "-ERR syntax error");
  EXPECT_EQ(Text({"SINTERCARD", "0", "s"}), "-ERR numkeys should be greater than 0");
  EXPECT_EQ(Text({"SINTERCARD", "3", "s"}),
            "-ERR Number of keys can't be greater than number of args");
  EXPECT_EQ(Text({"PING"}), "PONG");
  EXPECT_EQ(Text({"PING", "hi"}), "hi");
  EXPECT_EQ(Text({"ECHO", "x y"}), "x y");
  EXPECT_TRUE(Run({"CONFIG", "SET", "save", ""}).is_error());
  EXPECT_TRUE(Run({"SEGD.CREATE", "bad name"}).is_error());
  // Nothing answers "wrong type": every key is a set.
}

TEST_F(RespCommandsTest, LargeAnswersAreRefusedAboveTheCap) {
  config_.resp_max_members = 5;
  ASSERT_EQ(Text({"SEGD.CREATE", "s"}), "OK");
  ASSERT_EQ(Text({"SADD", "s", "1", "2", "3", "4", "5"}), "5");
  EXPECT_EQ(Run({"SMEMBERS", "s"}).elements.size(), 5u);
  EXPECT_EQ(Text({"SADD", "s", "6"}), "1");
  const RespReply refused = Run({"SMEMBERS", "s"});
  ASSERT_TRUE(refused.is_error());
  EXPECT_NE(refused.text.find("6 members"), std::string::npos) << refused.text;
  EXPECT_NE(refused.text.find("SSCAN"), std::string::npos) << refused.text;
  EXPECT_TRUE(Run({"SUNION", "s"}).is_error());
  EXPECT_EQ(Text({"SCARD", "s"}), "6");
}

// SSCAN's cursor is a position in the member order: a member present from the first call to
// the last is returned exactly once, whatever else comes and goes between the calls.
TEST_F(RespCommandsTest, ScanReturnsEveryStayingMemberOnceWhileOthersChange) {
  ASSERT_EQ(Text({"SEGD.CREATE", "s"}), "OK");
  std::set<std::string> staying;
  for (int i = 0; i < 300; ++i) {
    const std::string u = "u" + std::to_string(i);
    Run({"SADD", "s", u});
    if (i % 3 != 0) staying.insert(u);
  }
  std::mt19937 rng(3);
  std::multiset<std::string> seen;
  std::string cursor = "0";
  int churn = 0;
  do {
    const RespReply page = Run({"SSCAN", "s", cursor, "COUNT", std::to_string(1 + rng() % 40)});
    ASSERT_EQ(page.elements.size(), 2u) << page.ToString();
    cursor = page.elements[0].text;
    for (const RespReply& m : page.elements[1].elements) seen.insert(m.text);
    // Churn: members i % 3 == 0 leave; new ones arrive.
    Run({"SREM", "s", "u" + std::to_string(3 * (churn % 100))});
    Run({"SADD", "s", "new" + std::to_string(churn++)});
  } while (cursor != "0");
  for (const std::string& u : staying) EXPECT_EQ(seen.count(u), 1u) << u;
  EXPECT_EQ(Text({"SSCAN", "s", "0", "MATCH", "u1?", "COUNT", "1000"}),
            "[0, [u10, u11, u13, u14, u16, u17, u19]]");
}

// Model: random commands against std::set per segment.
TEST_F(RespCommandsTest, RandomCommandsMatchASetModel) {
  const std::vector<std::string> keys = {"a", "b", "c"};
  std::map<std::string, std::set<std::string>> model;
  for (const std::string& k : keys) ASSERT_EQ(Text({"SEGD.CREATE", k}), "OK");
  std::mt19937 rng(11);
  auto user = [&] { return "u" + std::to_string(rng() % 40); };
  auto key = [&] { return keys[rng() % keys.size()]; };
  auto list = [](const std::set<std::string>& s) {
    std::string out = "[";
    for (const std::string& u : s) out += (out.size() > 1 ? ", " : "") + u;
    return out + "]";
  };
  // Replies of set answers come in first-seen order; the model compares them sorted.
  auto sorted = [](RespReply r) {
    std::sort(r.elements.begin(), r.elements.end(),
              [](const RespReply& x, const RespReply& y) { return x.text < y.text; });
    return r.ToString();
  };
  for (int step = 0; step < 3000; ++step) {
    const std::string k = key();
    switch (rng() % 8) {
      case 0:
      case 1: {
        Args args = {"SADD", k};
        std::set<std::string> fresh;
        for (int n = 1 + static_cast<int>(rng() % 3); n > 0; --n) {
          args.push_back(user());
          if (!model[k].count(args.back())) fresh.insert(args.back());
        }
        ASSERT_EQ(Text(args), std::to_string(fresh.size())) << step;
        model[k].insert(args.begin() + 2, args.end());
        break;
      }
      case 2: {
        Args args = {"SREM", k};
        std::set<std::string> gone;
        for (int n = 1 + static_cast<int>(rng() % 3); n > 0; --n) {
          args.push_back(user());
          if (model[k].count(args.back())) gone.insert(args.back());
        }
        ASSERT_EQ(Text(args), std::to_string(gone.size())) << step;
        for (const std::string& u : gone) model[k].erase(u);
        break;
      }
      case 3: {
        const std::string u = user();
        ASSERT_EQ(Text({"SISMEMBER", k, u}), model[k].count(u) ? "1" : "0") << step;
        break;
      }
      case 4:
        ASSERT_EQ(Text({"SCARD", k}), std::to_string(model[k].size())) << step;
        ASSERT_EQ(sorted(Run({"SMEMBERS", k})), list(model[k])) << step;
        break;
      case 5: {
        std::set<std::string> both;
        std::set_intersection(model["a"].begin(), model["a"].end(), model["b"].begin(),
                              model["b"].end(), std::inserter(both, both.end()));
        ASSERT_EQ(sorted(Run({"SINTER", "a", "b"})), list(both)) << step;
        ASSERT_EQ(Text({"SINTERCARD", "2", "a", "b"}), std::to_string(both.size())) << step;
        break;
      }
      case 6: {
        std::set<std::string> any = model["a"];
        any.insert(model["c"].begin(), model["c"].end());
        ASSERT_EQ(sorted(Run({"SUNION", "a", "c"})), list(any)) << step;
        break;
      }
      case 7: {
        std::set<std::string> diff;
        std::set_difference(model["b"].begin(), model["b"].end(), model["c"].begin(),
                            model["c"].end(), std::inserter(diff, diff.end()));
        ASSERT_EQ(sorted(Run({"SDIFF", "b", "c"})), list(diff)) << step;
        break;
      }
    }
  }
}

TEST_F(RespCommandsTest, Resp3RepliesUseRespThreeTypes) {
  ASSERT_EQ(Text({"SEGD.CREATE", "s"}), "OK");
  ASSERT_EQ(Text({"SADD", "s", "u1"}), "1");
  EXPECT_EQ(Run({"SMEMBERS", "s"}).type, '*');
  EXPECT_EQ(Run({"CLIENT", "GETNAME"}).ToString(), "nil");
  const RespReply hello = Run({"HELLO", "3", "SETNAME", "app"});
  ASSERT_EQ(hello.type, '%') << hello.ToString();
  EXPECT_NE(hello.ToString().find("proto: 3"), std::string::npos) << hello.ToString();
  EXPECT_EQ(client_.protocol, 3);
  EXPECT_EQ(Run({"SMEMBERS", "s"}).type, '~');
  EXPECT_EQ(Run({"SEGD.QUERY", "s"}).type, '%');
  EXPECT_EQ(Run({"INFO", "server"}).type, '=');
  EXPECT_EQ(Text({"CLIENT", "GETNAME"}), "app");
  EXPECT_EQ(Run({"CONFIG", "GET", "save"}).type, '%');
  EXPECT_EQ(Text({"CONFIG", "GET", "app*"}), "{appendonly: yes, appendfsync: everysec}");
  EXPECT_EQ(Text({"HELLO", "4"}), "-NOPROTO unsupported protocol version");
  EXPECT_EQ(Text({"RESET"}), "RESET");
  EXPECT_EQ(client_.protocol, 2);
  EXPECT_EQ(Run({"CONFIG", "GET", "save"}).ToString(), "[save, ]");
}

TEST_F(RespCommandsTest, IntrospectionDescribesEveryCommand) {
  const RespReply count = Run({"COMMAND", "COUNT"});
  const RespReply all = Run({"COMMAND"});
  ASSERT_EQ(static_cast<size_t>(count.integer), all.elements.size());
  for (const RespReply& info : all.elements) {
    ASSERT_EQ(info.elements.size(), 10u) << info.ToString();
    EXPECT_EQ(info.elements[0].type, '$');
    EXPECT_EQ(info.elements[1].type, ':');
  }
  EXPECT_EQ(Run({"COMMAND", "INFO", "sismember", "nope"}).ToString().substr(0, 22),
            "[[sismember, 3, [reado");
  const RespReply docs = Run({"COMMAND", "DOCS", "SSCAN"});
  EXPECT_NE(docs.ToString().find("summary"), std::string::npos) << docs.ToString();
  EXPECT_NE(docs.ToString().find("optional"), std::string::npos) << docs.ToString();
  const std::string info = Run({"INFO"}).text;
  for (const char* section : {"# Server", "# Clients", "# Memory", "# Stats", "# Keyspace"}) {
    EXPECT_NE(info.find(section), std::string::npos) << section;
  }
  EXPECT_NE(info.find("redis_version:"), std::string::npos);
  EXPECT_EQ(Run({"INFO", "clients"}).text.find("# Server"), std::string::npos);
  EXPECT_EQ(Text({"CLIENT", "ID"}), std::to_string(client_.id));
  EXPECT_EQ(Text({"CLIENT", "SETINFO", "LIB-NAME", "redis-py"}), "OK");
  EXPECT_NE(Run({"CLIENT", "INFO"}).text.find("lib-name=redis-py"), std::string::npos);
  EXPECT_TRUE(Run({"CLIENT", "KILL", "x"}).is_error());
  EXPECT_EQ(Text({"QUIT"}), "OK");
  EXPECT_TRUE(client_.close);
}

TEST_F(RespCommandsTest, AccessControlNeedsAuthAndTheRightRoleAndScope) {
  testutil::TempDir dir;
  auto store = access::KeyStore::Open(dir.path());
  ASSERT_TRUE(store.ok());
  access::Authenticator auth(**store, nullptr);
  Rebuild(&auth, /*enforce=*/true);
  auto admin = auth.CreateKey({access::Role::kAdmin, {}, ""}, "test");
  auto reader = auth.CreateKey({access::Role::kReader, {}, ""}, "test");
  auto scoped = auth.CreateKey({access::Role::kWriter, {"team_*"}, ""}, "test");
  ASSERT_TRUE(admin.ok() && reader.ok() && scoped.ok());
  client_.ip = "10.0.0.1";

  EXPECT_EQ(Text({"PING"}), "-NOAUTH Authentication required.");
  EXPECT_TRUE(commands_->MustAuthenticate(client_));
  EXPECT_EQ(Text({"HELLO", "3"}).substr(0, 7), "-NOAUTH");
  EXPECT_EQ(Text({"AUTH", "segd_000000000000_nope"}),
            "-WRONGPASS invalid username-password pair or user is disabled.");
  EXPECT_EQ(Text({"AUTH", "default", admin->key}), "OK");
  EXPECT_FALSE(commands_->MustAuthenticate(client_));
  EXPECT_EQ(Text({"SEGD.CREATE", "team_a"}), "OK");
  EXPECT_EQ(Text({"SEGD.CREATE", "other"}), "OK");

  RespClient r;
  r.ip = "10.0.0.2";
  const RespReply hello = Run(r, {"HELLO", "3", "AUTH", "default", reader->key});
  EXPECT_EQ(hello.type, '%') << hello.ToString();
  EXPECT_EQ(Run(r, {"SISMEMBER", "team_a", "u"}).ToString(), "0");
  EXPECT_EQ(Run(r, {"SADD", "team_a", "u"}).ToString(),
            "-NOPERM this key's role (reader) may not run 'sadd', which needs writer");

  RespClient w;
  w.ip = "10.0.0.3";
  ASSERT_EQ(Run(w, {"AUTH", scoped->key}).ToString(), "OK");
  EXPECT_EQ(Run(w, {"SADD", "team_a", "u"}).ToString(), "1");
  EXPECT_EQ(Run(w, {"SADD", "other", "u"}).ToString().substr(0, 7), "-NOPERM");
  EXPECT_EQ(Run(w, {"SISMEMBER", "other", "u"}).ToString().substr(0, 7), "-NOPERM");
  EXPECT_EQ(Run(w, {"SINTER", "team_a", "other"}).ToString().substr(0, 7), "-NOPERM");
  EXPECT_EQ(Run(w, {"SEGD.QUERY", "team_a OR other"}).ToString().substr(0, 7), "-NOPERM");
  EXPECT_EQ(Run(w, {"SEGD.CREATE", "team_b"}).ToString().substr(0, 7), "-NOPERM");  // admin
  ASSERT_EQ(Text({"SADD", "other", "u"}), "1");
  EXPECT_EQ(Run(w, {"SEGD.USERSEGMENTS", "u"}).ToString(), "[team_a]");
  EXPECT_EQ(Run(w, {"DBSIZE"}).ToString(), "1");

  // A deleted key stops working on a connection already authenticated with it.
  ASSERT_TRUE(auth.DeleteKey(scoped->info.id, "test").ok());
  EXPECT_EQ(Run(w, {"SCARD", "team_a"}).ToString().substr(0, 7), "-NOAUTH");
  EXPECT_TRUE(commands_->MustAuthenticate(w));

  EXPECT_EQ(Text({"RESET"}), "RESET");
  EXPECT_EQ(Text({"PING"}), "-NOAUTH Authentication required.");
}

TEST_F(RespCommandsTest, AuthWithoutAccessControlIsAnError) {
  const RespReply r = Run({"AUTH", "secret"});
  ASSERT_TRUE(r.is_error());
  EXPECT_NE(r.text.find("--auth keys"), std::string::npos) << r.text;
  EXPECT_EQ(Text({"PING"}), "PONG");
}

// Single-member SADDs of several connections, applied as one batch, answer each as Execute
// would, in order: new, renewed, repeated in the batch, a missing segment, a malformed id.
TEST_F(RespCommandsTest, GatheredAddsAnswerEachAsExecuteWould) {
  ASSERT_EQ(Text({"SEGD.CREATE", "a"}), "OK");
  ASSERT_EQ(Text({"SEGD.CREATE", "b"}), "OK");
  ASSERT_EQ(Text({"SADD", "a", "old"}), "1");
  std::vector<absl::string_view> sadd = {"SADD", "a", "u1"};
  EXPECT_TRUE(commands_->IsBatchableAdd(client_, sadd));
  std::vector<absl::string_view> two = {"SADD", "a", "u1", "u2"};
  EXPECT_FALSE(commands_->IsBatchableAdd(client_, two));
  std::vector<absl::string_view> other = {"SREM", "a", "u1"};
  EXPECT_FALSE(commands_->IsBatchableAdd(client_, other));

  std::string first, second;
  const std::string bad_id(300, 'x');
  std::vector<RespCommands::PendingAdd> adds = {
      {"a", "u1", &first},  {"a", "old", &first},  {"b", "u1", &second},
      {"a", "u1", &second}, {"nope", "u", &first}, {"a", bad_id, &second},
  };
  commands_->ApplyAdds(adds);
  std::vector<RespReply> a = testutil::DecodeAllResp(first);
  std::vector<RespReply> b = testutil::DecodeAllResp(second);
  ASSERT_EQ(a.size(), 3u);
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(a[0].ToString(), "1");
  EXPECT_EQ(a[1].ToString(), "0");
  EXPECT_EQ(b[0].ToString(), "1");
  EXPECT_EQ(b[1].ToString(), "0");  // the same pair earlier in the batch
  EXPECT_EQ(a[2].ToString(), Text({"SADD", "nope", "u"}));
  EXPECT_TRUE(b[2].is_error());
  EXPECT_EQ(Text({"SMEMBERS", "a"}), "[old, u1]");
  EXPECT_EQ(Text({"SMEMBERS", "b"}), "[u1]");
}

TEST(RespGlobTest, MatchesAsRedisDoes) {
  EXPECT_TRUE(RedisGlobMatches("*", ""));
  EXPECT_TRUE(RedisGlobMatches("u*", "u123"));
  EXPECT_FALSE(RedisGlobMatches("u*", "x123"));
  EXPECT_TRUE(RedisGlobMatches("u?3", "u13"));
  EXPECT_TRUE(RedisGlobMatches("*a*b", "xxaxxb"));
  EXPECT_FALSE(RedisGlobMatches("*a*b", "xxaxxbc"));
  EXPECT_TRUE(RedisGlobMatches("u[0-2]", "u1"));
  EXPECT_FALSE(RedisGlobMatches("u[0-2]", "u5"));
  EXPECT_TRUE(RedisGlobMatches("u[^0-2]", "u5"));
  EXPECT_TRUE(RedisGlobMatches("a\\*", "a*"));
  EXPECT_FALSE(RedisGlobMatches("a\\*", "ab"));
  EXPECT_TRUE(RedisGlobMatches("[abc]x", "bx"));
}

TEST(RespIntegerTest, ParsesStrictDecimals) {
  EXPECT_EQ(ParseInteger("42", 0, 100), 42);
  EXPECT_EQ(ParseInteger("-5", -10, 10), -5);
  EXPECT_EQ(ParseInteger("9223372036854775807", 0, INT64_MAX), INT64_MAX);
  EXPECT_EQ(ParseInteger("9223372036854775808", 0, INT64_MAX), std::nullopt);
  for (const char* bad : {"", "-", "+1", " 1", "1 ", "1.0", "0x1", "101"}) {
    EXPECT_EQ(ParseInteger(bad, 0, 100), std::nullopt) << bad;
  }
}

}  // namespace
}  // namespace segd::server::resp
