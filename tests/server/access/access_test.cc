// Access control's parts: scope globs, the key store (files, audit log, digests), the
// authenticator (cache, deletion, failure limits) and JWT checks.

#include <atomic>
#include <ctime>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "server/access/authenticator.h"
#include "server/access/jwt_verifier.h"
#include "server/access/key_store.h"
#include "server/access/principal.h"
#include "tests/testutil/jwt_tokens.h"
#include "tests/testutil/temp_dir.h"

namespace segd::server::access {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void WriteAll(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
}

TEST(GlobTest, MatchesLikeAShellGlob) {
  EXPECT_TRUE(GlobMatches("ads_*", "ads_"));
  EXPECT_TRUE(GlobMatches("ads_*", "ads_summer"));
  EXPECT_FALSE(GlobMatches("ads_*", "ad_summer"));
  EXPECT_FALSE(GlobMatches("ads_*", "xads_summer"));
  EXPECT_TRUE(GlobMatches("*_eu", "promo_eu"));
  EXPECT_FALSE(GlobMatches("*_eu", "promo_eu2"));
  EXPECT_TRUE(GlobMatches("a*b*c", "aXXbYYc"));
  EXPECT_TRUE(GlobMatches("a*b*c", "abbbc"));
  EXPECT_FALSE(GlobMatches("a*b*c", "abbbd"));
  EXPECT_TRUE(GlobMatches("s?", "s1"));
  EXPECT_FALSE(GlobMatches("s?", "s12"));
  EXPECT_TRUE(GlobMatches("*", "anything"));
  EXPECT_TRUE(GlobMatches("exact", "exact"));
  EXPECT_FALSE(GlobMatches("exact", "exactly"));
  EXPECT_TRUE(ValidGlob("ads_*"));
  EXPECT_FALSE(ValidGlob(""));
  EXPECT_FALSE(ValidGlob("ads/*"));
  EXPECT_FALSE(ValidGlob(std::string(129, 'a')));
}

TEST(KeyStoreTest, KeysAreShownOnceStoredAsDigestsAndSurviveAReopen) {
  testutil::TempDir dir;
  auto store = KeyStore::Open(dir.path());
  ASSERT_TRUE(store.ok()) << store.status();
  auto created = (*store)->Create({Role::kWriter, {"ads_*"}, "ad server"}, "cli", 1000);
  ASSERT_TRUE(created.ok()) << created.status();
  const std::string key = created->key;
  ASSERT_TRUE(KeyStore::IdOf(key).has_value()) << key;
  EXPECT_EQ(*KeyStore::IdOf(key), created->info.id);

  // The secret is nowhere on disk; its digest and the audit line are.
  const std::string file = ReadAll(dir.Sub("keys.json"));
  EXPECT_EQ(file.find(key.substr(18)), std::string::npos) << file;
  EXPECT_NE(file.find(created->info.id), std::string::npos);
  const std::string audit = ReadAll(dir.Sub("audit.log"));
  EXPECT_NE(audit.find(R"("action":"key_created","key":")" + created->info.id), std::string::npos)
      << audit;
  EXPECT_NE(audit.find(R"("by":"cli")"), std::string::npos);

  auto principal = (*store)->Verify(key);
  ASSERT_NE(principal, nullptr);
  EXPECT_EQ(principal->role, Role::kWriter);
  EXPECT_TRUE(principal->CanSee("ads_x"));
  EXPECT_FALSE(principal->CanSee("other"));

  // Any other secret with the same id fails; so does a truncated key.
  std::string forged = key;
  forged.back() = forged.back() == '0' ? '1' : '0';
  EXPECT_EQ((*store)->Verify(forged), nullptr);
  EXPECT_EQ((*store)->Verify(key.substr(0, key.size() - 1)), nullptr);

  store->reset();
  auto reopened = KeyStore::Open(dir.path());
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  ASSERT_NE((*reopened)->Verify(key), nullptr);
  ASSERT_EQ((*reopened)->List().size(), 1u);
  EXPECT_EQ((*reopened)->List()[0].description, "ad server");

  auto removed = (*reopened)->Remove(created->info.id, "k_admin", 2000);
  ASSERT_TRUE(removed.ok() && *removed);
  EXPECT_EQ((*reopened)->Verify(key), nullptr);
  EXPECT_NE(ReadAll(dir.Sub("audit.log")).find(R"("action":"key_deleted")"), std::string::npos);
  reopened->reset();
  auto again = KeyStore::Open(dir.path());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->Verify(key), nullptr);
  EXPECT_EQ((*again)->size(), 0u);
}

TEST(KeyStoreTest, BadSpecsAndDamagedFilesAreRefused) {
  testutil::TempDir dir;
  auto store = KeyStore::Open(dir.path());
  ASSERT_TRUE(store.ok());
  EXPECT_FALSE((*store)->Create({Role::kReader, {"bad/glob"}, ""}, "cli", 1).ok());
  EXPECT_FALSE((*store)->Create({Role::kReader, {}, std::string(300, 'd')}, "cli", 1).ok());
  EXPECT_EQ((*store)->size(), 0u);

  WriteAll(dir.Sub("keys.json"), "{\"format\":1,\"keys\":[{\"id\":\"zz\"}]}");
  EXPECT_EQ(KeyStore::Open(dir.path()).status().code(), absl::StatusCode::kDataLoss);
  WriteAll(dir.Sub("keys.json"), "{not json");
  EXPECT_EQ(KeyStore::Open(dir.path()).status().code(), absl::StatusCode::kDataLoss);
}

TEST(KeyStoreTest, LastUseIsRecordedToTheMinute) {
  testutil::TempDir dir;
  auto store = KeyStore::Open(dir.path());
  ASSERT_TRUE(store.ok());
  auto created = (*store)->Create({Role::kReader, {}, ""}, "cli", 1);
  ASSERT_TRUE(created.ok());
  auto principal = (*store)->Verify(created->key);
  principal->usage->Count(29000000);
  ASSERT_TRUE((*store)->FlushUsage().ok());
  store->reset();
  auto reopened = KeyStore::Open(dir.path());
  ASSERT_EQ((*reopened)->List().at(0).last_used_minute, 29000000);
}

class AuthenticatorTest : public ::testing::Test {
 protected:
  AuthenticatorTest() : store_(std::move(KeyStore::Open(dir_.path()).value())) {}
  testutil::TempDir dir_;
  std::unique_ptr<KeyStore> store_;
};

TEST_F(AuthenticatorTest, BearerKeysAreAcceptedAndDeletedKeysFailAtOnce) {
  Authenticator auth(*store_, nullptr);
  auto created = auth.CreateKey({Role::kAdmin, {}, ""}, "cli");
  ASSERT_TRUE(created.ok());
  const std::string header = "Bearer " + created->key;
  for (int i = 0; i < 3; ++i) {  // the first verifies, the others hit the cache
    auto p = auth.Authenticate(header, "10.0.0.1");
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_EQ((*p)->role, Role::kAdmin);
  }
  EXPECT_TRUE(auth.Authenticate("bearer  " + created->key, "10.0.0.1").ok());
  EXPECT_EQ(store_->List().at(0).requests, 4u);

  EXPECT_FALSE(auth.Authenticate("", "10.0.0.1").ok());
  EXPECT_FALSE(auth.Authenticate("Basic abc", "10.0.0.1").ok());
  EXPECT_FALSE(auth.Authenticate("Bearer segd_nothing", "10.0.0.1").ok());

  ASSERT_TRUE(auth.DeleteKey(created->info.id, "test").ok());
  auto after = auth.Authenticate(header, "10.0.0.1");
  ASSERT_FALSE(after.ok()) << "a deleted key was still accepted (from the cache)";
}

// Each thread caches what it verified; a key another thread accepted is still "known" to this
// one, so a limited address does not lock out its good key when its connection moves threads.
TEST_F(AuthenticatorTest, AKeyAcceptedOnAnotherThreadIsNotLimited) {
  Authenticator auth(*store_, nullptr);
  auto created = auth.CreateKey({Role::kReader, {}, ""}, "cli");
  ASSERT_TRUE(created.ok());
  const std::string good = "Bearer " + created->key;
  std::thread([&] { ASSERT_TRUE(auth.Authenticate(good, "10.0.0.7").ok()); }).join();
  const std::string wrong = "Bearer segd_000000000000_" + std::string(64, 'a');
  for (int i = 0; i < Authenticator::kFailureBurst + 1; ++i) {
    ASSERT_FALSE(auth.Authenticate(wrong, "10.0.0.7").ok());
  }
  auto here = auth.Authenticate(good, "10.0.0.7");
  EXPECT_TRUE(here.ok()) << here.status();
  // Deleted, it fails on every thread.
  ASSERT_TRUE(auth.DeleteKey(created->info.id, "test").ok());
  EXPECT_FALSE(auth.Authenticate(good, "10.0.0.8").ok());
  std::thread([&] { EXPECT_FALSE(auth.Authenticate(good, "10.0.0.9").ok()); }).join();
}

// Threads authenticate a key that stays, keys that get deleted and wrong keys, all from
// addresses that end up limited, while another thread creates and deletes keys: the key that
// stays never fails (deletions drop only the deleted key from the caches), and the deleted
// ones fail once gone. Run under TSan too.
TEST_F(AuthenticatorTest, ConcurrentChecksAndDeletions) {
  Authenticator auth(*store_, nullptr);
  const std::string keep = "Bearer " + auth.CreateKey({Role::kReader, {}, ""}, "t")->key;
  std::vector<CreatedKey> victims;
  for (int i = 0; i < 4; ++i) victims.push_back(*auth.CreateKey({Role::kWriter, {}, ""}, "t"));
  std::atomic<bool> stop{false};
  std::atomic<int> keep_failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      const std::string address = "10.1.0." + std::to_string(t);
      const std::string victim = "Bearer " + victims[t].key;
      const std::string wrong = "Bearer segd_000000000000_" + std::string(64, 'a');
      do {
        if (!auth.Authenticate(keep, address).ok()) keep_failures.fetch_add(1);
        (void)auth.Authenticate(victim, address);
        (void)auth.Authenticate(wrong, address);
      } while (!stop.load());
    });
  }
  for (int i = 0; i < 20; ++i) {
    auto made = auth.CreateKey({Role::kAdmin, {}, ""}, "t");
    ASSERT_TRUE(made.ok());
    ASSERT_TRUE(auth.Authenticate("Bearer " + made->key, "10.2.0.1").ok());
    ASSERT_TRUE(auth.DeleteKey(made->info.id, "t").ok());
  }
  for (int t = 0; t < 3; ++t) ASSERT_TRUE(auth.DeleteKey(victims[t].info.id, "t").ok());
  stop.store(true);
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(keep_failures.load(), 0);
  for (int t = 0; t < 3; ++t) {
    EXPECT_FALSE(auth.Authenticate("Bearer " + victims[t].key, "10.3.0.1").ok());
  }
}

TEST_F(AuthenticatorTest, FailuresFromOneAddressAreLimitedNotOthers) {
  Authenticator auth(*store_, nullptr);
  auto created = auth.CreateKey({Role::kReader, {}, ""}, "cli");
  ASSERT_TRUE(created.ok());
  // A good key used before the guessing starts stays usable from the guesser's address.
  ASSERT_TRUE(auth.Authenticate("Bearer " + created->key, "10.0.0.9").ok());
  const std::string wrong = "Bearer segd_000000000000_" + std::string(64, 'a');
  int unauthorized = 0, limited = 0;
  for (int i = 0; i < Authenticator::kFailureBurst + 5; ++i) {
    auto r = auth.Authenticate(wrong, "10.0.0.9");
    ASSERT_FALSE(r.ok());
    (r.status().message().find("too many") != absl::string_view::npos ? limited : unauthorized)++;
  }
  EXPECT_EQ(unauthorized, Authenticator::kFailureBurst);
  EXPECT_EQ(limited, 5);
  EXPECT_TRUE(auth.Authenticate("Bearer " + created->key, "10.0.0.9").ok());
  // Another address is not affected.
  auto other = auth.Authenticate(wrong, "10.0.0.10");
  EXPECT_EQ(other.status().message().find("too many"), absl::string_view::npos);
  std::string metrics;
  auth.AppendMetrics(&metrics);
  EXPECT_NE(metrics.find("segd_auth_failures_total{reason=\"rate_limited\"} 5"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("segd_requests_by_key_total{key=\"" + created->info.id + "\"} 2"),
            std::string::npos)
      << metrics;
}

class JwtTest : public ::testing::Test {
 protected:
  std::unique_ptr<JwtVerifier> Verifier(const std::string& key, bool secret,
                                        const std::string& iss = "", const std::string& aud = "") {
    const std::string path = dir_.Sub(secret ? "secret" : "key.pem");
    WriteAll(path, key);
    JwtOptions options;
    (secret ? options.secret_file : options.public_key_file) = path;
    options.issuer = iss;
    options.audience = aud;
    auto v = JwtVerifier::Create(options);
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() ? *std::move(v) : nullptr;
  }
  static int64_t Now() { return static_cast<int64_t>(std::time(nullptr)); }
  static std::string Exp(int64_t delta) { return std::to_string(Now() + delta); }

  testutil::TempDir dir_;
  const std::string secret_ = std::string(40, 's');
};

TEST_F(JwtTest, Hs256TokensNameTheirRoleAndScope) {
  auto v = Verifier(secret_, true);
  std::string token =
      testutil::SignToken(JWT_ALG_HS256, secret_,
                          {{"role", "\"writer\""}, {"segments", "[\"ads_*\"]"}, {"exp", Exp(60)}});
  auto ok = v->Verify(token, Now());
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->principal->role, Role::kWriter);
  EXPECT_TRUE(ok->principal->CanSee("ads_1"));
  EXPECT_FALSE(ok->principal->CanSee("other"));
  EXPECT_EQ(ok->expires_at, Now() + 60 + 30);

  // A valid token that names no known role is refused.
  EXPECT_FALSE(
      v->Verify(testutil::SignToken(JWT_ALG_HS256, secret_, {{"role", "\"root\""}}), Now()).ok());
  EXPECT_FALSE(
      v->Verify(testutil::SignToken(JWT_ALG_HS256, secret_, {{"sub", "\"x\""}}), Now()).ok());
}

TEST_F(JwtTest, BadSignaturesAlgorithmsAndTimesAreRefused) {
  auto v = Verifier(secret_, true);
  const std::string good = testutil::SignToken(JWT_ALG_HS256, secret_, {{"role", "\"reader\""}});
  ASSERT_TRUE(v->Verify(good, Now()).ok());
  // Bad signature: signed with another secret, or a byte of the signature changed.
  EXPECT_FALSE(
      v->Verify(testutil::SignToken(JWT_ALG_HS256, std::string(40, 't'), {{"role", "\"reader\""}}),
                Now())
          .ok());
  std::string tampered = good;
  tampered[tampered.size() - 2] = tampered[tampered.size() - 2] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(v->Verify(tampered, Now()).ok());
  // Wrong algorithm: none, HS512.
  auto none = v->Verify(
      testutil::CraftToken(R"({"alg":"none","typ":"JWT"})", R"({"role":"admin"})", ""), Now());
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("algorithm 'none'"), absl::string_view::npos);
  EXPECT_FALSE(
      v->Verify(testutil::SignToken(JWT_ALG_HS512, secret_, {{"role", "\"reader\""}}), Now()).ok());
  // Expired (past the 30 s leeway), and not yet valid.
  auto expired = v->Verify(
      testutil::SignToken(JWT_ALG_HS256, secret_, {{"role", "\"reader\""}, {"exp", Exp(-31)}}),
      Now());
  ASSERT_FALSE(expired.ok());
  EXPECT_NE(expired.status().message().find("expired"), absl::string_view::npos);
  EXPECT_TRUE(v->Verify(testutil::SignToken(JWT_ALG_HS256, secret_,
                                            {{"role", "\"reader\""}, {"exp", Exp(-10)}}),
                        Now())
                  .ok())
      << "within the leeway";
  auto early = v->Verify(
      testutil::SignToken(JWT_ALG_HS256, secret_, {{"role", "\"reader\""}, {"nbf", Exp(120)}}),
      Now());
  ASSERT_FALSE(early.ok());
  EXPECT_NE(early.status().message().find("not yet valid"), absl::string_view::npos);
  // Garbage.
  EXPECT_FALSE(v->Verify("not.a.token", Now()).ok());
  EXPECT_FALSE(v->Verify("", Now()).ok());
}

TEST_F(JwtTest, IssuerAndAudienceAreCheckedWhenConfigured) {
  auto v = Verifier(secret_, true, "https://login.example.com", "segd");
  auto token = [&](const std::string& iss, const std::string& aud) {
    return testutil::SignToken(JWT_ALG_HS256, secret_,
                               {{"role", "\"reader\""}, {"iss", iss}, {"aud", aud}});
  };
  EXPECT_TRUE(v->Verify(token("\"https://login.example.com\"", "\"segd\""), Now()).ok());
  EXPECT_TRUE(v->Verify(token("\"https://login.example.com\"", "[\"x\",\"segd\"]"), Now()).ok());
  auto wrong_aud = v->Verify(token("\"https://login.example.com\"", "\"other\""), Now());
  ASSERT_FALSE(wrong_aud.ok());
  EXPECT_NE(wrong_aud.status().message().find("audience"), absl::string_view::npos);
  EXPECT_FALSE(v->Verify(token("\"https://evil.example.com\"", "\"segd\""), Now()).ok());
}

TEST_F(JwtTest, Rs256AndEs256PublicKeysAndNoAlgorithmConfusion) {
  for (bool ec : {false, true}) {
    SCOPED_TRACE(ec ? "ES256" : "RS256");
    testutil::PemPair pair = testutil::MakeKeyPair(ec);
    auto v = Verifier(pair.public_pem, false);
    ASSERT_NE(v, nullptr);
    EXPECT_EQ(v->algorithm(), ec ? "ES256" : "RS256");
    const jwt_alg_t alg = ec ? JWT_ALG_ES256 : JWT_ALG_RS256;
    auto ok = v->Verify(testutil::SignToken(alg, pair.private_pem, {{"role", "\"admin\""}}), Now());
    ASSERT_TRUE(ok.ok()) << ok.status();
    EXPECT_EQ(ok->principal->role, Role::kAdmin);
    // Another key pair's signature fails.
    testutil::PemPair other = testutil::MakeKeyPair(ec);
    EXPECT_FALSE(
        v->Verify(testutil::SignToken(alg, other.private_pem, {{"role", "\"admin\""}}), Now())
            .ok());
    // The classic confusion: HS256 "signed" with the public key as the secret.
    auto confused = v->Verify(
        testutil::SignToken(JWT_ALG_HS256, pair.public_pem, {{"role", "\"admin\""}}), Now());
    EXPECT_FALSE(confused.ok());
  }
}

TEST_F(JwtTest, CachedTokensSkipVerificationUntilTheyExpire) {
  auto v = Verifier(secret_, true);
  std::unique_ptr<KeyStore> store = std::move(KeyStore::Open(dir_.path()).value());
  Authenticator auth(*store, std::move(v));
  const std::string token =
      testutil::SignToken(JWT_ALG_HS256, secret_, {{"role", "\"reader\""}, {"exp", Exp(3600)}});
  auto first = auth.Authenticate("Bearer " + token, "1.2.3.4");
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = auth.Authenticate("Bearer " + token, "1.2.3.4");
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(first->get(), second->get()) << "the second use did not come from the cache";
  EXPECT_EQ((*first)->id, "jwt");
}

}  // namespace
}  // namespace segd::server::access
