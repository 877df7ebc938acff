// What access control adds to a request (part of segd-bench; select with
// --benchmark_filter=Auth): authenticating a key or a JWT that was seen before (the cache),
// from one thread and from two at once, and the first sight of each (a digest; a signature).

#include <benchmark/benchmark.h>
#include <jwt.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "server/access/authenticator.h"

namespace segd::server::access {
namespace {

const std::string kSecret(40, 's');

std::string Dir() {
  auto dir =
      std::filesystem::temp_directory_path() / ("segd-bench-auth-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return dir.string();
}

std::string Hs256Token(int64_t exp) {
  jwt_t* jwt = nullptr;
  jwt_new(&jwt);
  jwt_add_grant(jwt, "role", "reader");
  jwt_add_grant_int(jwt, "exp", exp);
  jwt_set_alg(jwt, JWT_ALG_HS256, reinterpret_cast<const unsigned char*>(kSecret.data()),
              static_cast<int>(kSecret.size()));
  char* text = jwt_encode_str(jwt);
  std::string token = text;
  std::free(text);
  jwt_free(jwt);
  return token;
}

// One authenticator with one key and a JWT verifier, shared by every benchmark thread.
struct Fixture {
  std::string dir = Dir();
  std::unique_ptr<KeyStore> keys;
  std::unique_ptr<Authenticator> auth;
  std::string key_header, jwt_header;

  Fixture() {
    std::ofstream(dir + "/secret") << kSecret;
    keys = *KeyStore::Open(dir);
    auto jwt = JwtVerifier::Create({.secret_file = dir + "/secret"});
    auth = std::make_unique<Authenticator>(*keys, *std::move(jwt));
    key_header = "Bearer " + keys->Create({Role::kReader, {}, ""}, "bench", 0)->key;
    jwt_header = "Bearer " + Hs256Token(std::time(nullptr) + 3600);
  }
  ~Fixture() { std::filesystem::remove_all(dir); }
};

Fixture& Shared() {
  static Fixture* fixture = new Fixture;
  return *fixture;
}

void BM_AuthCachedKey(benchmark::State& state) {
  Fixture& f = Shared();
  for (auto _ : state) benchmark::DoNotOptimize(f.auth->Authenticate(f.key_header, "10.0.0.1"));
}
BENCHMARK(BM_AuthCachedKey)->Threads(1)->Threads(2)->UseRealTime();

void BM_AuthCachedJwt(benchmark::State& state) {
  Fixture& f = Shared();
  for (auto _ : state) benchmark::DoNotOptimize(f.auth->Authenticate(f.jwt_header, "10.0.0.1"));
}
BENCHMARK(BM_AuthCachedJwt)->Threads(1)->Threads(2)->UseRealTime();

// The first sight of a key: its SHA-256 and the table lookup (what a cache miss costs).
void BM_AuthKeyDigest(benchmark::State& state) {
  Fixture& f = Shared();
  const std::string key = f.key_header.substr(7);
  for (auto _ : state) benchmark::DoNotOptimize(f.keys->Verify(key));
}
BENCHMARK(BM_AuthKeyDigest);

// The first sight of a token: header check, HMAC and claims through libjwt.
void BM_AuthJwtVerify(benchmark::State& state) {
  auto jwt = JwtVerifier::Create({.secret_file = Shared().dir + "/secret"});
  const std::string token = Hs256Token(std::time(nullptr) + 3600);
  const int64_t now = std::time(nullptr);
  for (auto _ : state) benchmark::DoNotOptimize((*jwt)->Verify(token, now));
}
BENCHMARK(BM_AuthJwtVerify);

}  // namespace
}  // namespace segd::server::access
