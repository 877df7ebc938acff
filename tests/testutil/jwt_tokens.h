#pragma once

// Test helpers for JWTs: key pairs made with OpenSSL, tokens signed with libjwt, and tokens
// crafted by hand (alg "none", a forged header) that no library would sign.

#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"

namespace segd::testutil {

struct PemPair {
  std::string private_pem;
  std::string public_pem;
};

// A fresh RSA-2048 or EC P-256 key pair.
inline PemPair MakeKeyPair(bool ec) {
  EVP_PKEY* key = ec ? EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")
                     : EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048});
  if (key == nullptr) std::abort();
  auto to_string = [](BIO* bio) {
    char* data = nullptr;
    long len = BIO_get_mem_data(bio, &data);
    std::string out(data, static_cast<size_t>(len));
    BIO_free(bio);
    return out;
  };
  BIO* priv = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(priv, key, nullptr, nullptr, 0, nullptr, nullptr);
  BIO* pub = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(pub, key);
  EVP_PKEY_free(key);
  return {to_string(priv), to_string(pub)};
}

// A token signed by libjwt with `alg` and `key` (the secret, or a private key in PEM), holding
// `claims` (name, JSON value).
inline std::string SignToken(jwt_alg_t alg, const std::string& key,
                             const std::vector<std::pair<std::string, std::string>>& claims) {
  jwt_t* jwt = nullptr;
  jwt_new(&jwt);
  std::string json = "{";
  for (size_t i = 0; i < claims.size(); ++i) {
    json += (i ? "," : "") + std::string("\"") + claims[i].first + "\":" + claims[i].second;
  }
  json += "}";
  jwt_add_grants_json(jwt, json.c_str());
  jwt_set_alg(jwt, alg, reinterpret_cast<const unsigned char*>(key.data()),
              static_cast<int>(key.size()));
  char* text = jwt_encode_str(jwt);
  std::string out = text ? text : "";
  std::free(text);
  jwt_free(jwt);
  return out;
}

// header.payload.signature from raw JSON texts and a raw signature (base64url-encoded here).
inline std::string CraftToken(const std::string& header, const std::string& payload,
                              const std::string& signature) {
  return absl::WebSafeBase64Escape(header) + "." + absl::WebSafeBase64Escape(payload) + "." +
         absl::WebSafeBase64Escape(signature);
}

}  // namespace segd::testutil
