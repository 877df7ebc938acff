#pragma once

// Three fixed API keys for the fuzz targets, whose corpus inputs may carry them: kAdminKey,
// kReaderKey, and kScopedKey (a writer limited to segments "sp*"). WriteFixedKeys puts them in
// a data directory's keys.json (docs/security.md gives the format).

#include <openssl/sha.h>

#include <fstream>
#include <string>

#include "absl/strings/escaping.h"

namespace segd::testutil {

inline const std::string kAdminKey = "segd_00000000000a_" + std::string(64, 'a');
inline const std::string kReaderKey = "segd_00000000000b_" + std::string(64, 'b');
inline const std::string kScopedKey = "segd_00000000000c_" + std::string(64, 'c');

inline std::string Sha256Hex(const std::string& text) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
}

// keys.json with the three fixed keys (docs/security.md gives the format).
inline void WriteFixedKeys(const std::string& dir) {
  std::ofstream out(dir + "/keys.json");
  out << R"({"format":1,"keys":[)"
      << R"({"id":"00000000000a","digest":")" << Sha256Hex(kAdminKey)
      << R"(","role":"admin","segments":[],"description":"","created_at":0,"created_by":"cli","last_used_minute":0},)"
      << R"({"id":"00000000000b","digest":")" << Sha256Hex(kReaderKey)
      << R"(","role":"reader","segments":[],"description":"","created_at":0,"created_by":"cli","last_used_minute":0},)"
      << R"({"id":"00000000000c","digest":")" << Sha256Hex(kScopedKey)
      << R"(","role":"writer","segments":["sp*"],"description":"","created_at":0,"created_by":"cli","last_used_minute":0}]})";
}

}  // namespace segd::testutil
