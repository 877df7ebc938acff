#pragma once

// Files compiled into segd (tools/embed writes them): the interactive API documentation at
// /docs, Swagger UI from the npm package swagger-ui-dist (pinned in tools/api), and segd's page
// around it (server/docs/).
//
// Thread safety: constants.

#include <cstddef>
#include <optional>

#include "absl/strings/string_view.h"

namespace segd::server {

struct EmbeddedFile {
  absl::string_view name;  // as requested under /docs/ ("swagger-ui.css")
  absl::string_view data;
};

// One of the documentation's files, by name ("index.html" is the page at /docs).
std::optional<EmbeddedFile> FindDocsFile(absl::string_view name);
// Its Content-Type, from the name's extension.
absl::string_view DocsContentType(absl::string_view name);

}  // namespace segd::server
