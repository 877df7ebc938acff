#pragma once

// JwtVerifier: checks JSON Web Tokens with libjwt (Debian's libjwt-dev), and turns a valid one
// into a Principal.
//
// Accepted: HS256 with a shared secret (--jwt-secret FILE), or RS256 / ES256 with a public key
// in PEM (--jwt-public-key FILE; the key's type picks the one algorithm). The token header's
// `alg` is checked against that single algorithm before libjwt sees the token, so `none`, and
// an HS256 token "signed" with a public key, are refused whatever the library would do; a
// header with `crit` is refused too (no extension is understood).
// Claims: `exp` and `nbf` when present, with a leeway; `iss` and `aud` when configured (`aud`
// may be a string or an array); `role` must name reader, writer or admin (else the token is
// refused: a valid token without a known role is 401); `segments`, an optional array of globs,
// limits the token like a key's scope.
//
// Thread safety: Verify may be called from any number of threads at once.

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/access/principal.h"

namespace segd::server::access {

struct JwtOptions {
  std::string secret_file;      // HS256
  std::string public_key_file;  // RS256 or ES256
  std::string issuer;           // required `iss` when set
  std::string audience;         // required in `aud` when set
  int64_t leeway_seconds = 30;  // for exp and nbf
};

struct VerifiedToken {
  std::shared_ptr<const Principal> principal;
  int64_t expires_at = 0;  // Unix seconds; 0: the token has no exp
};

class JwtVerifier {
 public:
  // Reads the key file. Errors: InvalidArgument for a missing or unreadable file, an empty
  // secret, or a public key that is neither RSA nor EC P-256.
  static absl::StatusOr<std::unique_ptr<JwtVerifier>> Create(const JwtOptions& options);
  ~JwtVerifier();

  // Verifies `token` at Unix time `now`. Errors: Unauthenticated, saying why (for the log;
  // the client is told only that the token was refused).
  absl::StatusOr<VerifiedToken> Verify(absl::string_view token, int64_t now) const;

  // "HS256", "RS256" or "ES256".
  const std::string& algorithm() const { return algorithm_; }

 private:
  JwtVerifier() = default;

  JwtOptions options_;
  std::string algorithm_;
  std::string key_;  // the secret, or the PEM text
};

}  // namespace segd::server::access
