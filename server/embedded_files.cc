#include "server/embedded_files.h"

#include "absl/strings/match.h"

namespace segd::server {

// Written at build time by tools/embed (server/CMakeLists.txt).
extern const EmbeddedFile kDocsFiles[];
extern const size_t kDocsFiles_count;

std::optional<EmbeddedFile> FindDocsFile(absl::string_view name) {
  for (size_t i = 0; i < kDocsFiles_count; ++i) {
    if (kDocsFiles[i].name == name) return kDocsFiles[i];
  }
  return std::nullopt;
}

absl::string_view DocsContentType(absl::string_view name) {
  auto ends_with = [name](absl::string_view suffix) { return absl::EndsWith(name, suffix); };
  if (ends_with(".html")) return "text/html; charset=utf-8";
  if (ends_with(".css")) return "text/css; charset=utf-8";
  if (ends_with(".js")) return "application/javascript; charset=utf-8";
  return "application/octet-stream";
}

}  // namespace segd::server
