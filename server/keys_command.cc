#include "server/keys_command.h"

#include <chrono>
#include <cstdio>

#include "absl/strings/str_split.h"
#include "server/access/key_store.h"
#include "storage/data_dir.h"

namespace segd::server {
namespace {

constexpr const char* kUsage =
    "usage: segd keys create --data-dir DIR --role reader|writer|admin [--segments GLOB,GLOB] "
    "[--description TEXT]\n"
    "       segd keys list --data-dir DIR\n"
    "       segd keys delete --data-dir DIR ID\n";

int Usage(const std::string& why) {
  std::fprintf(stderr, "segd keys: %s\n%s", why.c_str(), kUsage);
  return 2;
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

int RunKeysCommand(const std::vector<std::string>& args) {
  if (args.empty()) return Usage("which command: create, list or delete?");
  const std::string& verb = args[0];
  std::string data_dir, role, segments, description;
  std::vector<std::string> rest;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](std::string* out) {
      if (i + 1 >= args.size()) return false;
      *out = args[++i];
      return true;
    };
    bool ok = true;
    if (a == "--data-dir") {
      ok = value(&data_dir);
    } else if (a == "--role") {
      ok = value(&role);
    } else if (a == "--segments") {
      ok = value(&segments);
    } else if (a == "--description") {
      ok = value(&description);
    } else if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a.rfind("--", 0) == 0) {
      return Usage("unknown flag " + a);
    } else {
      rest.push_back(a);
    }
    if (!ok) return Usage(a + " needs a value");
  }
  if (data_dir.empty()) return Usage("--data-dir is required");
  if (verb != "create" && verb != "list" && verb != "delete") {
    return Usage("unknown command '" + verb + "'");
  }
  if (verb == "delete" && rest.size() != 1) return Usage("delete takes one key id");
  if (verb != "delete" && !rest.empty()) return Usage("unexpected argument " + rest[0]);
  access::KeySpec spec;
  if (verb == "create") {
    auto parsed = access::ParseRole(role);
    if (!parsed) return Usage("--role must be reader, writer or admin");
    spec.role = *parsed;
    for (absl::string_view g : absl::StrSplit(segments, ',', absl::SkipWhitespace())) {
      spec.segments.emplace_back(g);
    }
    spec.description = description;
  }

  auto dir = storage::DataDir::Lock(data_dir);
  if (!dir.ok()) {
    std::fprintf(stderr,
                 "segd keys: %s\n(while segd runs on this directory, manage keys with "
                 "POST/GET/DELETE /v1/keys)\n",
                 std::string(dir.status().message()).c_str());
    return 1;
  }
  auto store = access::KeyStore::Open(data_dir);
  if (!store.ok()) {
    std::fprintf(stderr, "segd keys: %s\n", std::string(store.status().message()).c_str());
    return 1;
  }
  if (verb == "create") {
    auto created = (*store)->Create(spec, "cli", NowMs());
    if (!created.ok()) {
      std::fprintf(stderr, "segd keys: %s\n", std::string(created.status().message()).c_str());
      return 1;
    }
    std::printf("%s\n", created->key.c_str());
    std::fprintf(stderr,
                 "segd keys: created key %s (role %s%s%s); it is shown once, above, and stored "
                 "only as a digest\n",
                 created->info.id.c_str(), std::string(access::RoleName(spec.role)).c_str(),
                 segments.empty() ? "" : ", segments ", segments.c_str());
    return 0;
  }
  if (verb == "delete") {
    auto removed = (*store)->Remove(rest[0], "cli", NowMs());
    if (!removed.ok()) {
      std::fprintf(stderr, "segd keys: %s\n", std::string(removed.status().message()).c_str());
      return 1;
    }
    if (!*removed) {
      std::fprintf(stderr, "segd keys: no key %s\n", rest[0].c_str());
      return 1;
    }
    std::fprintf(stderr, "segd keys: deleted key %s\n", rest[0].c_str());
    return 0;
  }
  for (const access::KeyInfo& k : (*store)->List()) {
    std::string scope;
    for (const std::string& g : k.segments) scope += (scope.empty() ? "" : ",") + g;
    std::printf("%s\t%s\t%s\t%s\n", k.id.c_str(), std::string(access::RoleName(k.role)).c_str(),
                scope.empty() ? "*" : scope.c_str(), k.description.c_str());
  }
  return 0;
}

}  // namespace segd::server
