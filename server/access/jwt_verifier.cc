#include "server/access/jwt_verifier.h"

#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "server/detail/json_input.h"

namespace segd::server::access {
namespace {

absl::Status Refused(absl::string_view why) {
  return absl::UnauthenticatedError(absl::StrCat("token refused: ", why));
}

absl::StatusOr<std::string> ReadFile(const std::string& path, absl::string_view flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(flag, ": cannot read '", path, "'"));
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// The PEM key's algorithm: RS256 for RSA, ES256 for EC on P-256.
absl::StatusOr<std::string> AlgorithmOfPem(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  EVP_PKEY* key = bio ? PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr) : nullptr;
  BIO_free(bio);
  if (key == nullptr) {
    return absl::InvalidArgumentError("--jwt-public-key: not a PEM public key");
  }
  std::string alg;
  if (EVP_PKEY_base_id(key) == EVP_PKEY_RSA) {
    alg = "RS256";
  } else if (EVP_PKEY_base_id(key) == EVP_PKEY_EC && EVP_PKEY_get_bits(key) == 256) {
    alg = "ES256";
  }
  EVP_PKEY_free(key);
  if (alg.empty()) {
    return absl::InvalidArgumentError("--jwt-public-key: the key is neither RSA nor EC P-256");
  }
  return alg;
}

struct JwtFree {
  void operator()(jwt_t* j) const { jwt_free(j); }
};

// A JSON claim's text (libjwt's jwt_get_grants_json), empty when absent.
std::string ClaimJson(jwt_t* jwt, const char* name) {
  char* text = jwt_get_grants_json(jwt, name);
  if (text == nullptr) return "";
  std::string out(text);
  std::free(text);
  return out;
}

// A numeric date claim: nullopt when absent; an error when present but not a number.
absl::StatusOr<std::optional<int64_t>> DateClaim(jwt_t* jwt, const char* name) {
  const std::string json = ClaimJson(jwt, name);
  if (json.empty()) return std::nullopt;
  int64_t value = 0;
  double d = 0;
  char* end = nullptr;
  d = std::strtod(json.c_str(), &end);
  if (end == json.c_str() || *end != '\0')
    return Refused(absl::StrCat("'", name, "' is not a date"));
  value = static_cast<int64_t>(d);
  return value;
}

// Reads a JSON array of strings (or, when `allow_string`, one string) from `json`.
absl::StatusOr<std::vector<std::string>> StringList(std::string json, std::string_view what,
                                                    bool allow_string) {
  std::string wrapped = absl::StrCat("{\"v\":", json, "}");
  std::vector<std::string> out;
  absl::Status s = detail::ParseObjectBody(wrapped, [&](std::string_view, detail::JsonValue& v) {
    if (allow_string && detail::IsString(v)) {
      auto one = detail::ReadString(v, what);
      if (!one.ok()) return one.status();
      out.emplace_back(*one);
      return absl::OkStatus();
    }
    return detail::ForEachElement(v, what, [&](detail::JsonValue& e) {
      auto item = detail::ReadString(e, what);
      if (!item.ok()) return item.status();
      out.emplace_back(*item);
      return absl::OkStatus();
    });
  });
  if (!s.ok())
    return Refused(absl::StrCat("'", detail::AsAbsl(what), "' is not a list of strings"));
  return out;
}

}  // namespace

JwtVerifier::~JwtVerifier() = default;

absl::StatusOr<std::unique_ptr<JwtVerifier>> JwtVerifier::Create(const JwtOptions& options) {
  std::unique_ptr<JwtVerifier> v(new JwtVerifier);
  v->options_ = options;
  if (!options.secret_file.empty()) {
    auto secret = ReadFile(options.secret_file, "--jwt-secret");
    if (!secret.ok()) return secret.status();
    std::string s = *std::move(secret);
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    if (s.size() < 32) {
      return absl::InvalidArgumentError(
          "--jwt-secret: the secret must be at least 32 bytes (HS256 keys are 256 bits)");
    }
    v->key_ = std::move(s);
    v->algorithm_ = "HS256";
  } else {
    auto pem = ReadFile(options.public_key_file, "--jwt-public-key");
    if (!pem.ok()) return pem.status();
    auto alg = AlgorithmOfPem(*pem);
    if (!alg.ok()) return alg.status();
    v->key_ = *std::move(pem);
    v->algorithm_ = *std::move(alg);
  }
  return v;
}

absl::StatusOr<VerifiedToken> JwtVerifier::Verify(absl::string_view token, int64_t now) const {
  if (token.size() > 8192) return Refused("longer than 8 KiB");
  const size_t dot = token.find('.');
  if (dot == absl::string_view::npos) return Refused("not a JWT");
  std::string header;
  if (!absl::WebSafeBase64Unescape(token.substr(0, dot), &header)) {
    return Refused("the header is not base64url");
  }
  std::string alg;
  bool critical = false;
  absl::Status parsed = detail::ParseObjectBody(
      header, [&](std::string_view key, detail::JsonValue& v) -> absl::Status {
        if (key == "alg") {
          auto a = detail::ReadString(v, "alg");
          if (!a.ok()) return a.status();
          alg = std::string(*a);
        } else if (key == "crit") {
          critical = true;
        }
        return absl::OkStatus();
      });
  if (!parsed.ok()) return Refused("the header is not a JSON object");
  if (alg != algorithm_) {
    return Refused(absl::StrCat("algorithm '", alg, "' is not accepted (only ", algorithm_, ")"));
  }
  if (critical) return Refused("'crit' header parameters are not understood");

  const std::string text(token);
  jwt_t* raw = nullptr;
  const int rc = jwt_decode(&raw, text.c_str(), reinterpret_cast<const unsigned char*>(key_.data()),
                            static_cast<int>(key_.size()));
  std::unique_ptr<jwt_t, JwtFree> jwt(raw);
  if (rc != 0 || !jwt) return Refused("bad signature or malformed token");
  if (jwt_alg_str(jwt_get_alg(jwt.get())) != algorithm_) return Refused("algorithm mismatch");

  VerifiedToken out;
  const int64_t leeway = options_.leeway_seconds;
  auto exp = DateClaim(jwt.get(), "exp");
  if (!exp.ok()) return exp.status();
  if (*exp) {
    if (now > **exp + leeway) return Refused("expired");
    out.expires_at = **exp + leeway;
  }
  auto nbf = DateClaim(jwt.get(), "nbf");
  if (!nbf.ok()) return nbf.status();
  if (*nbf && now + leeway < **nbf) return Refused("not yet valid");
  if (!options_.issuer.empty()) {
    const char* iss = jwt_get_grant(jwt.get(), "iss");
    if (iss == nullptr || options_.issuer != iss) return Refused("wrong issuer");
  }
  if (!options_.audience.empty()) {
    const std::string aud = ClaimJson(jwt.get(), "aud");
    if (aud.empty()) return Refused("no audience");
    auto audiences = StringList(aud, "aud", /*allow_string=*/true);
    if (!audiences.ok()) return audiences.status();
    bool found = false;
    for (const std::string& a : *audiences) found = found || a == options_.audience;
    if (!found) return Refused("wrong audience");
  }
  const char* role_claim = jwt_get_grant(jwt.get(), "role");
  std::optional<Role> role = role_claim ? ParseRole(role_claim) : std::nullopt;
  if (!role) return Refused("no known role in the 'role' claim");
  auto principal = std::make_shared<Principal>();
  principal->role = *role;
  principal->id = "jwt";
  if (const std::string scope = ClaimJson(jwt.get(), "segments"); !scope.empty()) {
    auto globs = StringList(scope, "segments", /*allow_string=*/false);
    if (!globs.ok()) return globs.status();
    for (const std::string& g : *globs) {
      if (!ValidGlob(g)) return Refused("a bad glob in 'segments'");
    }
    if (globs->empty()) return Refused("'segments' is empty");
    principal->scope = *std::move(globs);
  }
  out.principal = std::move(principal);
  return out;
}

}  // namespace segd::server::access
