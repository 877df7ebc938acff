// The command table, dispatch with access control, and the connection and introspection
// commands (PING, HELLO, AUTH, CLIENT, COMMAND, INFO, CONFIG, …). The set commands are in
// resp_set_commands.cc.

#include "server/resp/resp_commands.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/resp/resp_context.h"

namespace segd::server::resp {

using access::Role;
using Context = RespCommands::Context;
using Handler = void (*)(Context&);

// The Redis version whose commands and replies segd follows, for clients that gate features
// on INFO's redis_version or HELLO's version.
constexpr absl::string_view kRedisVersion = "7.0.0";

struct RespCommands::CommandDef {
  const char* name;  // upper case
  // Redis's arity: n, exactly n arguments (the name included); -n, at least n.
  int arity;
  Role role;  // kPublic: allowed before AUTH
  bool mutates;
  // COMMAND INFO: the key positions (first, last, step; last -1 is the last argument).
  int first_key, last_key, key_step;
  const char* flags;    // COMMAND INFO, space-separated
  const char* group;    // COMMAND DOCS
  const char* summary;  // COMMAND DOCS
  // COMMAND DOCS arguments, space-separated words after the name: a word in brackets is
  // optional ("[TTL seconds]" is one optional argument), a word followed by "..." repeats.
  const char* syntax;
  Handler handler;
};

namespace {

void Ping(Context& ctx);
void Echo(Context& ctx);
void Hello(Context& ctx);
void Auth(Context& ctx);
void Select(Context& ctx);
void Client(Context& ctx);
void Command(Context& ctx);
void Info(Context& ctx);
void Config(Context& ctx);
void Quit(Context& ctx);
void Reset(Context& ctx);

constexpr RespCommands::CommandDef kCommands[] = {
    // Sets: a segment is a set key, a user id a member.
    {"SADD", -3, Role::kWriter, true, 1, 1, 1, "write denyoom fast", "set",
     "Adds users to an existing segment; answers how many were not members.", "key member ...",
     SAdd},
    {"SREM", -3, Role::kWriter, true, 1, 1, 1, "write fast", "set",
     "Removes users from a segment; answers how many were members.", "key member ...", SRem},
    {"SISMEMBER", 3, Role::kReader, false, 1, 1, 1, "readonly fast", "set",
     "Whether a user is in a segment: 1 or 0.", "key member", SIsMember},
    {"SMISMEMBER", -3, Role::kReader, false, 1, 1, 1, "readonly fast", "set",
     "Whether each user is in a segment: 1 or 0 per member.", "key member ...", SMIsMember},
    {"SCARD", 2, Role::kReader, false, 1, 1, 1, "readonly fast", "set",
     "The number of users in a segment.", "key", SCard},
    {"SMEMBERS", 2, Role::kReader, false, 1, 1, 1, "readonly", "set",
     "Every user of a segment, refused above --resp-max-members.", "key", SMembers},
    {"SSCAN", -3, Role::kReader, false, 1, 1, 1, "readonly", "set",
     "Pages through a segment's users in first-seen order.",
     "key cursor [MATCH pattern] [COUNT count]", SScan},
    {"SINTERCARD", -3, Role::kReader, false, 0, 0, 0, "readonly movablekeys", "set",
     "The number of users in every given segment.", "numkeys key ... [LIMIT limit]", SInterCard},
    {"SINTER", -2, Role::kReader, false, 1, -1, 1, "readonly", "set",
     "The users in every given segment.", "key ...", SInter},
    {"SUNION", -2, Role::kReader, false, 1, -1, 1, "readonly", "set",
     "The users in any given segment.", "key ...", SUnion},
    {"SDIFF", -2, Role::kReader, false, 1, -1, 1, "readonly", "set",
     "The users in the first segment and in none of the others.", "key ...", SDiff},
    {"EXISTS", -2, Role::kReader, false, 1, -1, 1, "readonly fast", "generic",
     "How many of the keys name an existing segment.", "key ...", Exists},
    {"TYPE", 2, Role::kReader, false, 1, 1, 1, "readonly fast", "generic",
     "'set' for an existing segment, 'none' otherwise.", "key", Type},
    {"DBSIZE", 1, Role::kReader, false, 0, 0, 0, "readonly fast", "server",
     "The number of segments.", "", DbSize},
    // segd's own, namespaced as modules do.
    {"SEGD.ADD", -3, Role::kWriter, true, 1, 1, 1, "write denyoom fast", "segd",
     "Adds a user to a segment with an optional TTL: 1 if new, 0 if its expiry was renewed.",
     "key member [TTL seconds]", SegdAdd},
    {"SEGD.CREATE", -2, Role::kAdmin, true, 1, 1, 1, "write", "segd",
     "Creates a segment, with an optional default TTL for its memberships.", "key [TTL seconds]",
     SegdCreate},
    {"SEGD.USERSEGMENTS", 2, Role::kReader, false, 0, 0, 0, "readonly fast", "segd",
     "The segments a user is in, sorted by name.", "member", SegdUserSegments},
    {"SEGD.QUERY", -2, Role::kReader, false, 0, 0, 0, "readonly", "segd",
     "Counts (and with LIMIT lists) the users of a set expression over segments.",
     "expression [LIMIT limit]", SegdQuery},
    // Connection and introspection.
    {"PING", -1, Role::kReader, false, 0, 0, 0, "fast", "connection", "Answers PONG.", "[message]",
     Ping},
    {"ECHO", 2, Role::kReader, false, 0, 0, 0, "fast", "connection", "Answers the message.",
     "message", Echo},
    {"HELLO", -1, Role::kPublic, false, 0, 0, 0, "noauth fast", "connection",
     "Chooses RESP2 or RESP3, optionally authenticates and names the connection.",
     "[protover [AUTH username password] [SETNAME clientname]]", Hello},
    {"AUTH", -2, Role::kPublic, false, 0, 0, 0, "noauth fast", "connection",
     "Authenticates the connection with an API key or a JWT (the username is ignored).",
     "[username] password", Auth},
    {"SELECT", 2, Role::kReader, false, 0, 0, 0, "fast", "connection", "Only database 0 exists.",
     "index", Select},
    {"CLIENT", -2, Role::kReader, false, 0, 0, 0, "", "connection",
     "CLIENT ID, SETNAME, GETNAME, SETINFO, INFO.", "subcommand [argument ...]", Client},
    {"COMMAND", -1, Role::kReader, false, 0, 0, 0, "", "server",
     "Describes segd's commands: COMMAND, COUNT, INFO, DOCS, LIST.", "[subcommand [name ...]]",
     Command},
    {"INFO", -1, Role::kReader, false, 0, 0, 0, "", "server",
     "Server, clients, memory, persistence, stats and keyspace figures.", "[section ...]", Info},
    {"CONFIG", -2, Role::kReader, false, 0, 0, 0, "", "server",
     "CONFIG GET of the settings clients ask for; settings change only by flags.",
     "GET parameter ...", Config},
    {"QUIT", -1, Role::kPublic, false, 0, 0, 0, "noauth fast", "connection",
     "Closes the connection after answering OK.", "", Quit},
    {"RESET", 1, Role::kPublic, false, 0, 0, 0, "noauth fast", "connection",
     "Returns the connection to its first state: RESP2, no name, not authenticated.", "", Reset},
};
constexpr int kCommandCount = sizeof(kCommands) / sizeof(kCommands[0]);

constexpr bool EveryCommandHasARole() {
  for (const RespCommands::CommandDef& c : kCommands) {
    if (c.role != Role::kPublic && c.role != Role::kReader && c.role != Role::kWriter &&
        c.role != Role::kAdmin) {
      return false;
    }
  }
  return true;
}
static_assert(EveryCommandHasARole(), "every command declares the role it needs");

std::string Lower(absl::string_view s) { return absl::AsciiStrToLower(s); }

// ----------------------------------------------------------------------------- connection

void Ping(Context& ctx) {
  if (ctx.args.size() > 2) {
    return ctx.Error("ERR wrong number of arguments for 'ping' command");
  }
  if (ctx.args.size() == 2) return ctx.out.Bulk(ctx.args[1]);
  ctx.out.Simple("PONG");
}

void Echo(Context& ctx) { ctx.out.Bulk(ctx.args[1]); }

void Select(Context& ctx) {
  auto index = ParseInteger(ctx.args[1], std::numeric_limits<int64_t>::min(),
                            std::numeric_limits<int64_t>::max());
  if (!index) return ctx.Error("ERR value is not an integer or out of range");
  if (*index != 0) return ctx.Error("ERR DB index is out of range (segd has database 0 only)");
  ctx.out.Simple("OK");
}

void Quit(Context& ctx) {
  ctx.client.close = true;
  ctx.out.Simple("OK");
}

void Reset(Context& ctx) {
  ctx.client.protocol = 2;
  ctx.client.name.clear();
  ctx.client.credential.clear();
  ctx.out = RespWriter(ctx.out.out(), 2);
  ctx.out.Simple("RESET");
}

// Authenticates `password` for the connection: OK, or an error reply written.
bool Authenticate(Context& ctx, absl::string_view password) {
  if (!ctx.enforce) {
    ctx.Error(
        "ERR AUTH called without access control on: segd accepts every command here "
        "(start it with --auth keys to require keys)");
    return false;
  }
  std::string credential = absl::StrCat("Bearer ", password);
  auto principal = ctx.auth->Authenticate(credential, ctx.client.ip);
  if (!principal.ok()) {
    if (engine::ErrorCodeOf(principal.status()) == "too_many_requests") {
      ctx.Error(absl::StrCat("ERR ", principal.status().message()));
    } else {
      ctx.Error("WRONGPASS invalid username-password pair or user is disabled.");
    }
    return false;
  }
  ctx.client.credential = std::move(credential);
  return true;
}

void Auth(Context& ctx) {
  if (ctx.args.size() > 3) return ctx.SyntaxError();
  if (!Authenticate(ctx, ctx.args.back())) return;
  ctx.out.Simple("OK");
}

bool ValidClientName(absl::string_view name) {
  for (char c : name) {
    if (c < '!' || c > '~') return false;
  }
  return true;
}

void Hello(Context& ctx) {
  int protocol = ctx.client.protocol;
  size_t i = 1;
  if (ctx.args.size() >= 2) {
    auto version = ParseInteger(ctx.args[1], 0, std::numeric_limits<int64_t>::max());
    if (!version) return ctx.Error("ERR Protocol version is not an integer or out of range");
    if (*version != 2 && *version != 3) return ctx.Error("NOPROTO unsupported protocol version");
    protocol = static_cast<int>(*version);
    i = 2;
  }
  bool authenticated = false;
  std::optional<absl::string_view> name;
  for (; i < ctx.args.size(); ++i) {
    const bool more = i + 1 < ctx.args.size();
    if (absl::EqualsIgnoreCase(ctx.args[i], "AUTH") && i + 2 < ctx.args.size()) {
      if (!Authenticate(ctx, ctx.args[i + 2])) return;
      authenticated = true;
      i += 2;
    } else if (absl::EqualsIgnoreCase(ctx.args[i], "SETNAME") && more) {
      name = ctx.args[i + 1];
      if (!ValidClientName(*name)) {
        return ctx.Error("ERR Client names cannot contain spaces, newlines or special characters.");
      }
      ++i;
    } else {
      return ctx.Error(absl::StrCat("ERR Syntax error in HELLO option '", ctx.args[i], "'"));
    }
  }
  if (!authenticated && ctx.commands.MustAuthenticate(ctx.client)) {
    return ctx.Error(
        "NOAUTH HELLO must be called with the client already authenticated, otherwise the "
        "HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and "
        "select the RESP protocol version at the same time");
  }
  if (name) ctx.client.name = std::string(*name);
  ctx.client.protocol = protocol;
  ctx.out = RespWriter(ctx.out.out(), protocol);
  ctx.out.Map(7);
  ctx.out.Bulk("server");
  ctx.out.Bulk("segd");
  ctx.out.Bulk("version");
  ctx.out.Bulk(kRedisVersion);
  ctx.out.Bulk("proto");
  ctx.out.Integer(protocol);
  ctx.out.Bulk("id");
  ctx.out.Integer(static_cast<int64_t>(ctx.client.id));
  ctx.out.Bulk("mode");
  ctx.out.Bulk("standalone");
  ctx.out.Bulk("role");
  ctx.out.Bulk("master");
  ctx.out.Bulk("modules");
  ctx.out.Array(0);
}

std::string ClientInfoLine(const RespClient& c) {
  return absl::StrCat("id=", c.id, " addr=", c.address, " name=", c.name,
                      " age=", std::max<int64_t>(0, std::time(nullptr) - c.connected_at),
                      " db=0 resp=", c.protocol, " lib-name=", c.lib_name,
                      " lib-ver=", c.lib_version, "\n");
}

void Client(Context& ctx) {
  const absl::string_view sub = ctx.args[1];
  const size_t n = ctx.args.size();
  if (absl::EqualsIgnoreCase(sub, "ID") && n == 2) {
    ctx.out.Integer(static_cast<int64_t>(ctx.client.id));
  } else if (absl::EqualsIgnoreCase(sub, "SETNAME") && n == 3) {
    if (!ValidClientName(ctx.args[2])) {
      return ctx.Error("ERR Client names cannot contain spaces, newlines or special characters.");
    }
    ctx.client.name = std::string(ctx.args[2]);
    ctx.out.Simple("OK");
  } else if (absl::EqualsIgnoreCase(sub, "GETNAME") && n == 2) {
    if (ctx.client.name.empty()) return ctx.out.Null();
    ctx.out.Bulk(ctx.client.name);
  } else if (absl::EqualsIgnoreCase(sub, "SETINFO") && n == 4) {
    if (!ValidClientName(ctx.args[3])) {
      return ctx.Error(
          "ERR CLIENT SETINFO values cannot contain spaces, newlines or special characters.");
    }
    if (absl::EqualsIgnoreCase(ctx.args[2], "LIB-NAME")) {
      ctx.client.lib_name = std::string(ctx.args[3]);
    } else if (absl::EqualsIgnoreCase(ctx.args[2], "LIB-VER")) {
      ctx.client.lib_version = std::string(ctx.args[3]);
    } else {
      return ctx.Error(absl::StrCat("ERR Unrecognized option '", ctx.args[2], "'"));
    }
    ctx.out.Simple("OK");
  } else if (absl::EqualsIgnoreCase(sub, "INFO") && n == 2) {
    ctx.out.Verbatim(ClientInfoLine(ctx.client));
  } else {
    ctx.Error(absl::StrCat("ERR unknown subcommand or wrong number of arguments for '", sub,
                           "'. segd's CLIENT takes ID, SETNAME, GETNAME, SETINFO and INFO."));
  }
}

// ----------------------------------------------------------------------------- COMMAND

void WriteWords(RespWriter& out, absl::string_view words, absl::string_view prefix) {
  std::vector<absl::string_view> list = absl::StrSplit(words, ' ', absl::SkipEmpty());
  out.Set(list.size());
  for (absl::string_view w : list) out.Simple(absl::StrCat(prefix, w));
}

void WriteCommandInfo(RespWriter& out, const RespCommands::CommandDef& c) {
  out.Array(10);
  out.Bulk(Lower(c.name));
  out.Integer(c.arity);
  WriteWords(out, c.flags, "");
  out.Integer(c.first_key);
  out.Integer(c.last_key);
  out.Integer(c.key_step);
  const std::string categories = absl::StrCat(c.mutates ? "write" : "read", " ", c.group);
  WriteWords(out, categories, "@");
  out.Array(0);  // tips
  out.Array(0);  // key specifications
  out.Array(0);  // subcommands
}

// One argument of COMMAND DOCS from a word of CommandDef::syntax.
void WriteArgumentDoc(RespWriter& out, absl::string_view word, bool optional, bool multiple) {
  std::string name = Lower(word);
  std::replace(name.begin(), name.end(), ' ', '-');
  const bool is_key = word == "key";
  out.Map(3 + (optional || multiple ? 1 : 0));
  out.Bulk("name");
  out.Bulk(name);
  out.Bulk("type");
  out.Bulk(is_key ? "key" : "string");
  out.Bulk("display_text");
  out.Bulk(word);
  if (optional || multiple) {
    out.Bulk("flags");
    out.Set(optional && multiple ? 2 : 1);
    if (optional) out.Simple("optional");
    if (multiple) out.Simple("multiple");
  }
}

void WriteCommandDocs(RespWriter& out, const RespCommands::CommandDef& c) {
  // Arguments: words, "[…]" groups (optional), "..." repeating the one before.
  struct Arg {
    std::string text;
    bool optional = false;
    bool multiple = false;
  };
  std::vector<Arg> args;
  absl::string_view rest = c.syntax;
  while (!rest.empty()) {
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    if (rest.empty()) break;
    if (rest.front() == '[') {
      size_t depth = 0, end = 0;
      for (; end < rest.size(); ++end) {
        if (rest[end] == '[') ++depth;
        if (rest[end] == ']' && --depth == 0) break;
      }
      args.push_back({std::string(rest.substr(1, end - 1)), true, false});
      rest.remove_prefix(std::min(rest.size(), end + 1));
    } else {
      size_t end = rest.find(' ');
      absl::string_view word = rest.substr(0, end);
      rest.remove_prefix(end == absl::string_view::npos ? rest.size() : end);
      if (word == "..." && !args.empty()) {
        args.back().multiple = true;
      } else {
        args.push_back({std::string(word)});
      }
    }
  }
  out.Map(4);
  out.Bulk("summary");
  out.Bulk(c.summary);
  out.Bulk("since");
  out.Bulk("1.0.0");
  out.Bulk("group");
  out.Bulk(c.group);
  out.Bulk("arguments");
  out.Array(args.size());
  for (const Arg& a : args) WriteArgumentDoc(out, a.text, a.optional, a.multiple);
}

const RespCommands::CommandDef* FindDef(absl::string_view name) {
  for (const RespCommands::CommandDef& c : kCommands) {
    if (absl::EqualsIgnoreCase(c.name, name)) return &c;
  }
  return nullptr;
}

void Command(Context& ctx) {
  RespWriter& out = ctx.out;
  if (ctx.args.size() == 1) {
    out.Array(kCommandCount);
    for (const auto& c : kCommands) WriteCommandInfo(out, c);
    return;
  }
  const absl::string_view sub = ctx.args[1];
  const auto names = ctx.args.subspan(2);
  if (absl::EqualsIgnoreCase(sub, "COUNT") && names.empty()) {
    out.Integer(kCommandCount);
  } else if (absl::EqualsIgnoreCase(sub, "LIST")) {
    out.Array(kCommandCount);
    for (const auto& c : kCommands) out.Bulk(Lower(c.name));
  } else if (absl::EqualsIgnoreCase(sub, "INFO")) {
    if (names.empty()) {
      out.Array(kCommandCount);
      for (const auto& c : kCommands) WriteCommandInfo(out, c);
      return;
    }
    out.Array(names.size());
    for (absl::string_view name : names) {
      const auto* c = FindDef(name);
      if (c == nullptr) {
        out.Null();
      } else {
        WriteCommandInfo(out, *c);
      }
    }
  } else if (absl::EqualsIgnoreCase(sub, "DOCS")) {
    std::vector<const RespCommands::CommandDef*> defs;
    if (names.empty()) {
      for (const auto& c : kCommands) defs.push_back(&c);
    } else {
      for (absl::string_view name : names) {
        if (const auto* c = FindDef(name)) defs.push_back(c);
      }
    }
    out.Map(defs.size());
    for (const auto* c : defs) {
      out.Bulk(Lower(c->name));
      WriteCommandDocs(out, *c);
    }
  } else {
    ctx.Error(absl::StrCat("ERR unknown subcommand or wrong number of arguments for '", sub,
                           "'. segd's COMMAND takes COUNT, LIST, INFO and DOCS."));
  }
}

// ----------------------------------------------------------------------------- INFO, CONFIG

uint64_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  uint64_t pages = 0, resident = 0;
  if (!(statm >> pages >> resident)) return 0;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

void Info(Context& ctx) {
  std::vector<std::string> wanted;
  for (absl::string_view a : ctx.args.subspan(1)) wanted.push_back(Lower(a));
  auto want = [&](absl::string_view section) {
    if (wanted.empty()) return true;
    for (const std::string& w : wanted) {
      if (w == section || w == "all" || w == "everything" || w == "default") return true;
    }
    return false;
  };
  const engine::EngineStats stats = ctx.engine.Stats();
  std::string text;
  if (want("server")) {
    absl::StrAppend(&text, "# Server\r\nredis_version:", kRedisVersion,
                    "\r\nsegd_version:", ServerVersion().substr(5),
                    "\r\nredis_mode:standalone\r\nos:Linux\r\narch_bits:64\r\nprocess_id:",
                    getpid(), "\r\ntcp_port:", ctx.config.resp_port.value_or(0),
                    "\r\nuptime_in_seconds:", ctx.commands.UptimeSeconds(), "\r\n\r\n");
  }
  if (want("clients")) {
    absl::StrAppend(&text, "# Clients\r\nconnected_clients:", ctx.metrics.connections_open(),
                    "\r\nmaxclients:", ctx.config.max_connections, "\r\n\r\n");
  }
  if (want("memory")) {
    const uint64_t rss = ResidentBytes();
    absl::StrAppend(&text, "# Memory\r\nused_memory:", rss, "\r\nused_memory_rss:", rss,
                    "\r\n\r\n");
  }
  if (want("persistence")) {
    const bool fsync = ctx.config.durability == storage::Durability::kFsync;
    absl::StrAppend(&text, "# Persistence\r\nloading:0\r\naof_enabled:1\r\nsegd_durability:",
                    fsync ? "fsync" : "process", "\r\n\r\n");
  }
  if (want("stats")) {
    absl::StrAppend(&text,
                    "# Stats\r\ntotal_connections_received:", ctx.metrics.connections_total(),
                    "\r\ntotal_commands_processed:", ctx.commands.CommandsProcessed(),
                    "\r\nrejected_connections:", ctx.metrics.connections_rejected(),
                    "\r\nexpired_keys:0\r\nsegd_memberships:", stats.memberships,
                    "\r\nsegd_users:", stats.registered_users, "\r\n\r\n");
  }
  if (want("keyspace")) {
    absl::StrAppend(&text, "# Keyspace\r\n");
    if (stats.active_segments > 0) {
      absl::StrAppend(&text, "db0:keys=", stats.active_segments, ",expires=0,avg_ttl=0\r\n");
    }
  }
  ctx.out.Verbatim(text);
}

void Config(Context& ctx) {
  if (!absl::EqualsIgnoreCase(ctx.args[1], "GET")) {
    return ctx.Error(absl::StrCat("ERR CONFIG ", ctx.args[1],
                                  " is not supported: segd's settings are its flags (segd "
                                  "--help); CONFIG GET reads the ones clients ask for"));
  }
  if (ctx.args.size() < 3) {
    return ctx.Error("ERR wrong number of arguments for 'config|get' command");
  }
  const bool fsync = ctx.config.durability == storage::Durability::kFsync;
  const std::pair<std::string, std::string> settings[] = {
      {"appendonly", "yes"},
      {"appendfsync", fsync ? "always" : "everysec"},
      {"databases", "1"},
      {"maxclients", absl::StrCat(ctx.config.max_connections)},
      {"port", absl::StrCat(ctx.config.resp_port.value_or(0))},
      {"save", ""},
      {"timeout", absl::StrCat(ctx.config.resp_idle_timeout_seconds)},
  };
  std::vector<const std::pair<std::string, std::string>*> found;
  for (const auto& s : settings) {
    for (absl::string_view pattern : ctx.args.subspan(2)) {
      if (RedisGlobMatches(Lower(pattern), s.first)) {
        found.push_back(&s);
        break;
      }
    }
  }
  ctx.out.Map(found.size());
  for (const auto* s : found) {
    ctx.out.Bulk(s->first);
    ctx.out.Bulk(s->second);
  }
}

}  // namespace

// ----------------------------------------------------------------------------- helpers

std::optional<int64_t> ParseInteger(absl::string_view arg, int64_t min, int64_t max) {
  if (arg.empty() || arg.size() > 20) return std::nullopt;
  size_t i = 0;
  const bool negative = arg[0] == '-';
  if (negative) i = 1;
  if (i == arg.size()) return std::nullopt;
  uint64_t magnitude = 0;
  for (; i < arg.size(); ++i) {
    const char c = arg[i];
    if (c < '0' || c > '9') return std::nullopt;
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (magnitude > (std::numeric_limits<uint64_t>::max() - digit) / 10) return std::nullopt;
    magnitude = magnitude * 10 + digit;
  }
  int64_t value;
  if (negative) {
    if (magnitude > uint64_t{1} << 63) return std::nullopt;
    value = magnitude == uint64_t{1} << 63 ? std::numeric_limits<int64_t>::min()
                                           : -static_cast<int64_t>(magnitude);
  } else {
    if (magnitude > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return std::nullopt;
    }
    value = static_cast<int64_t>(magnitude);
  }
  if (value < min || value > max) return std::nullopt;
  return value;
}

namespace {

// Matches one character class at pattern[*p] ('[' already passed) against `c`; leaves *p
// after the closing ']'.
bool ClassMatches(absl::string_view pattern, size_t* p, char c) {
  bool negate = false;
  bool matched = false;
  if (*p < pattern.size() && pattern[*p] == '^') {
    negate = true;
    ++*p;
  }
  while (*p < pattern.size() && pattern[*p] != ']') {
    if (pattern[*p] == '\\' && *p + 1 < pattern.size()) {
      ++*p;
      if (pattern[*p] == c) matched = true;
      ++*p;
    } else if (*p + 2 < pattern.size() && pattern[*p + 1] == '-' && pattern[*p + 2] != ']') {
      char lo = pattern[*p], hi = pattern[*p + 2];
      if (lo > hi) std::swap(lo, hi);
      if (c >= lo && c <= hi) matched = true;
      *p += 3;
    } else {
      if (pattern[*p] == c) matched = true;
      ++*p;
    }
  }
  if (*p < pattern.size()) ++*p;  // the ']'
  return negate ? !matched : matched;
}

}  // namespace

bool RedisGlobMatches(absl::string_view pattern, absl::string_view text) {
  // Backtracking to the last '*' only: linear in practice, at worst pattern × text.
  size_t p = 0, t = 0;
  size_t star_p = absl::string_view::npos, star_t = 0;
  while (t < text.size()) {
    if (p < pattern.size()) {
      const char pc = pattern[p];
      if (pc == '*') {
        star_p = ++p;
        star_t = t;
        continue;
      }
      if (pc == '?') {
        ++p;
        ++t;
        continue;
      }
      if (pc == '[') {
        size_t q = p + 1;
        if (ClassMatches(pattern, &q, text[t])) {
          p = q;
          ++t;
          continue;
        }
      } else if (pc == '\\' && p + 1 < pattern.size()) {
        if (pattern[p + 1] == text[t]) {
          p += 2;
          ++t;
          continue;
        }
      } else if (pc == text[t]) {
        ++p;
        ++t;
        continue;
      }
    }
    if (star_p == absl::string_view::npos) return false;
    p = star_p;
    t = ++star_t;
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

bool Context::RequireSegment(absl::string_view name) {
  if (CanSee(name)) return true;
  Error(absl::StrCat("NOPERM this key may not use segment '", name, "' (outside its segments)"));
  return false;
}

void Context::Error(absl::string_view message) {
  failed = true;
  out.Error(message);
}

void Context::Fail(const absl::Status& status) {
  const std::string code = engine::ErrorCodeOf(status);
  if (code == "forbidden") return Error(absl::StrCat("NOPERM ", status.message()));
  Error(absl::StrCat("ERR ", status.message()));
}

bool Context::Exists(absl::string_view key) const { return engine.FindSegment(key).has_value(); }

// ----------------------------------------------------------------------------- RespCommands

RespCommands::RespCommands(engine::Engine& engine, const ServerConfig& config, Metrics& metrics,
                           access::Authenticator* auth, bool enforce)
    : engine_(engine),
      config_(config),
      metrics_(metrics),
      auth_(auth),
      enforce_(auth != nullptr && enforce),
      started_at_(std::time(nullptr)),
      calls_(new std::atomic<uint64_t>[kCommandCount]),
      errors_(new std::atomic<uint64_t>[kCommandCount]) {
  for (int i = 0; i < kCommandCount; ++i) {
    by_name_.emplace(kCommands[i].name, i);
    calls_[i].store(0);
    errors_[i].store(0);
  }
}

const RespCommands::CommandDef* RespCommands::Find(absl::string_view name) const {
  // Names are short: upper-case into a stack buffer, then one hash lookup.
  char upper[32];
  if (name.size() > sizeof(upper)) return nullptr;
  for (size_t i = 0; i < name.size(); ++i) upper[i] = absl::ascii_toupper(name[i]);
  auto it = by_name_.find(absl::string_view(upper, name.size()));
  return it == by_name_.end() ? nullptr : &kCommands[it->second];
}

bool RespCommands::Mutates(absl::string_view name) const {
  const CommandDef* c = Find(name);
  return c != nullptr && c->mutates;
}

int64_t RespCommands::UptimeSeconds() const { return std::time(nullptr) - started_at_; }

uint64_t RespCommands::CommandsProcessed() const {
  uint64_t total = unknown_.load(std::memory_order_relaxed);
  for (int i = 0; i < kCommandCount; ++i) total += calls_[i].load(std::memory_order_relaxed);
  return total;
}

void RespCommands::Execute(RespClient& client, absl::Span<const absl::string_view> args,
                           std::string* out) {
  RespWriter writer(out, client.protocol);
  if (args.empty()) return;
  const CommandDef* def = Find(args[0]);
  if (def == nullptr) {
    unknown_.fetch_add(1, std::memory_order_relaxed);
    std::string message = absl::StrCat("ERR unknown command '", args[0].substr(0, 128),
                                       "', with args beginning with: ");
    for (absl::string_view a : args.subspan(1, 8)) {
      absl::StrAppend(&message, "'", a.substr(0, 128), "' ");
    }
    writer.Error(message);
    return;
  }
  const int index = static_cast<int>(def - kCommands);
  calls_[index].fetch_add(1, std::memory_order_relaxed);
  const int n = static_cast<int>(args.size());
  if ((def->arity > 0 && n != def->arity) || (def->arity < 0 && n < -def->arity)) {
    errors_[index].fetch_add(1, std::memory_order_relaxed);
    writer.Error(
        absl::StrCat("ERR wrong number of arguments for '", Lower(def->name), "' command"));
    return;
  }
  Context ctx{engine_, config_, metrics_, auth_, enforce_, *this, client, args, writer};
  std::shared_ptr<const access::Principal> caller;
  if (enforce_ && def->role != Role::kPublic) {
    if (client.credential.empty()) {
      errors_[index].fetch_add(1, std::memory_order_relaxed);
      writer.Error("NOAUTH Authentication required.");
      return;
    }
    // Every command checks the credential again (a per-thread cache makes it one lookup), so
    // a deleted key or an expired token stops working on connections already open.
    auto principal = auth_->Authenticate(client.credential, client.ip);
    if (!principal.ok()) {
      errors_[index].fetch_add(1, std::memory_order_relaxed);
      if (engine::ErrorCodeOf(principal.status()) == "too_many_requests") {
        writer.Error(absl::StrCat("ERR ", principal.status().message()));
      } else {
        client.credential.clear();
        writer.Error(
            "NOAUTH the key or token of this connection is no longer valid (deleted or "
            "expired); AUTH again");
      }
      return;
    }
    caller = std::move(*principal);
    if (!caller->Allows(def->role)) {
      errors_[index].fetch_add(1, std::memory_order_relaxed);
      writer.Error(absl::StrCat("NOPERM this key's role (", access::RoleName(caller->role),
                                ") may not run '", Lower(def->name), "', which needs ",
                                access::RoleName(def->role)));
      return;
    }
    ctx.caller = caller.get();
  }
  def->handler(ctx);
  if (ctx.failed) errors_[index].fetch_add(1, std::memory_order_relaxed);
}

bool RespCommands::IsBatchableAdd(const RespClient& client,
                                  absl::Span<const absl::string_view> command) {
  if (command.size() != 3 || command[0].size() != 4 ||
      !absl::EqualsIgnoreCase(command[0], "SADD")) {
    return false;
  }
  if (!enforce_) return true;
  if (client.credential.empty()) return false;
  auto principal = auth_->Authenticate(client.credential, client.ip);
  return principal.ok() && (*principal)->Allows(Role::kWriter) && (*principal)->CanSee(command[1]);
}

void RespCommands::ApplyAdds(absl::Span<const PendingAdd> adds) {
  const int index = static_cast<int>(Find("SADD") - kCommands);
  calls_[index].fetch_add(adds.size(), std::memory_order_relaxed);
  std::vector<std::pair<absl::string_view, absl::string_view>> pairs;
  pairs.reserve(adds.size());
  for (const PendingAdd& a : adds) pairs.emplace_back(a.key, a.member);
  auto outcomes = engine_.AddEach(pairs);
  for (size_t i = 0; i < adds.size(); ++i) {
    RespWriter out(adds[i].out, 2);  // integers and errors read the same in RESP2 and RESP3
    const absl::Status& status = !outcomes.ok() ? outcomes.status() : (*outcomes)[i].status();
    if (status.ok()) {
      out.Integer(*(*outcomes)[i] ? 1 : 0);
      continue;
    }
    errors_[index].fetch_add(1, std::memory_order_relaxed);
    out.Error(WriteErrorMessage(adds[i].key, status));
  }
}

void RespCommands::AppendMetrics(std::string* out) const {
  absl::StrAppend(out,
                  "# HELP segd_resp_commands_total RESP commands answered, by command.\n"
                  "# TYPE segd_resp_commands_total counter\n");
  for (int i = 0; i < kCommandCount; ++i) {
    absl::StrAppend(out, "segd_resp_commands_total{command=\"", Lower(kCommands[i].name), "\"} ",
                    calls_[i].load(std::memory_order_relaxed), "\n");
  }
  absl::StrAppend(out, "segd_resp_commands_total{command=\"unknown\"} ",
                  unknown_.load(std::memory_order_relaxed), "\n");
  absl::StrAppend(out,
                  "# HELP segd_resp_command_errors_total RESP commands answered with an error "
                  "reply, by command.\n# TYPE segd_resp_command_errors_total counter\n");
  for (int i = 0; i < kCommandCount; ++i) {
    absl::StrAppend(out, "segd_resp_command_errors_total{command=\"", Lower(kCommands[i].name),
                    "\"} ", errors_[i].load(std::memory_order_relaxed), "\n");
  }
}

}  // namespace segd::server::resp
