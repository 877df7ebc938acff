// segd-embed: writes a C++ source file that holds files as string data, for segd to serve
// without reading them at run time (Swagger UI at /docs).
//
//   segd-embed OUT.cc SYMBOL NAME=PATH...
//
// OUT.cc defines `const segd::server::EmbeddedFile SYMBOL[]` (server/embedded_files.h), one
// entry per argument in order, and `const size_t SYMBOL_count`. Exits 1 naming a file it
// cannot read.

#include <cstdio>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>

namespace {

// Appends `data` as adjacent string literals of at most 4 KiB each, escaping what a literal
// cannot hold as it is.
void AppendLiteral(std::string* out, const std::string& data) {
  constexpr size_t kLine = 4096;
  out->append("\"");
  size_t in_line = 0;
  for (unsigned char c : data) {
    if (in_line >= kLine) {
      out->append("\"\n\"");
      in_line = 0;
    }
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(static_cast<char>(c));
    } else if (c == '\n') {
      out->append("\\n");
    } else if (c < 0x20 || c >= 0x7f || c == '?') {
      // Octal, always three digits, so that a following digit is not read as part of it.
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\%03o", c);
      out->append(buf);
    } else {
      out->push_back(static_cast<char>(c));
    }
    ++in_line;
  }
  out->append("\"");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: segd-embed OUT.cc SYMBOL NAME=PATH...\n");
    return 2;
  }
  const std::string symbol = argv[2];
  std::string out =
      "// Written by segd-embed; do not edit.\n#include \"server/embedded_files.h\"\n\n"
      "namespace segd::server {\n\nextern const EmbeddedFile " +
      symbol + "[] = {\n";
  for (int i = 3; i < argc; ++i) {
    const std::string arg = argv[i];
    const size_t eq = arg.find('=');
    if (eq == std::string::npos) {
      std::fprintf(stderr, "segd-embed: '%s' is not NAME=PATH\n", arg.c_str());
      return 2;
    }
    const std::string path = arg.substr(eq + 1);
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "segd-embed: cannot read '%s'\n", path.c_str());
      return 1;
    }
    std::ostringstream data;
    data << in.rdbuf();
    const std::string bytes = data.str();
    out += "    {\"" + arg.substr(0, eq) + "\", absl::string_view(";
    AppendLiteral(&out, bytes);
    out += ", " + std::to_string(bytes.size()) + ")},\n";
  }
  out += "};\nextern const size_t " + symbol + "_count = " + std::to_string(argc - 3) +
         ";\n\n}  // namespace segd::server\n";
  std::ofstream file(argv[1], std::ios::binary | std::ios::trunc);
  file << out;
  if (!file) {
    std::fprintf(stderr, "segd-embed: cannot write '%s'\n", argv[1]);
    return 1;
  }
  return 0;
}
