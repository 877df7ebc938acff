#pragma once

// Test helper: decodes Redis protocol replies (RESP2 and RESP3) into a tree, and prints one in
// redis-cli's spirit for assertions ("(integer) 3", "[a, b]").

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace segd::testutil {

struct RespReply {
  char type = 0;  // '+', '-', ':', '$', '*', '_', '#', ',', '%', '~', '='
  std::string text;
  int64_t integer = 0;
  bool null = false;
  std::vector<RespReply> elements;  // arrays, sets; maps as key, value, key, value

  bool is_error() const { return type == '-'; }
  // Compact text: "OK", "-ERR …", "3", "nil", "[a, b]", "{k: v}".
  std::string ToString() const {
    switch (type) {
      case '+':
      case '$':
      case '=':
      case ',':
        return null ? "nil" : text;
      case '-':
        return "-" + text;
      case ':':
        return std::to_string(integer);
      case '#':
        return integer ? "true" : "false";
      case '_':
        return "nil";
      case '%': {
        std::string out = "{";
        for (size_t i = 0; i + 1 < elements.size(); i += 2) {
          if (i) out += ", ";
          out += elements[i].ToString() + ": " + elements[i + 1].ToString();
        }
        return out + "}";
      }
      default: {
        if (null) return "nil";
        std::string out = "[";
        for (size_t i = 0; i < elements.size(); ++i) {
          if (i) out += ", ";
          out += elements[i].ToString();
        }
        return out + "]";
      }
    }
  }
};

// Decodes one reply at data[*pos], advancing *pos; nullopt if the data ends first.
inline std::optional<RespReply> DecodeResp(const std::string& data, size_t* pos) {
  if (*pos >= data.size()) return std::nullopt;
  const size_t eol = data.find("\r\n", *pos);
  if (eol == std::string::npos) return std::nullopt;
  RespReply r;
  r.type = data[*pos];
  const std::string line = data.substr(*pos + 1, eol - *pos - 1);
  size_t next = eol + 2;
  auto aggregate = [&](size_t n) -> bool {
    for (size_t i = 0; i < n; ++i) {
      auto e = DecodeResp(data, &next);
      if (!e) return false;
      r.elements.push_back(std::move(*e));
    }
    return true;
  };
  switch (r.type) {
    case '+':
    case '-':
    case ',':
      r.text = line;
      break;
    case ':':
      r.integer = std::stoll(line);
      break;
    case '#':
      r.integer = line == "t";
      break;
    case '_':
      r.null = true;
      break;
    case '$':
    case '=': {
      const long long n = std::stoll(line);
      if (n < 0) {
        r.null = true;
        break;
      }
      if (data.size() < next + static_cast<size_t>(n) + 2) return std::nullopt;
      r.text = data.substr(next, static_cast<size_t>(n));
      if (r.type == '=') r.text = r.text.substr(4);  // "txt:"
      next += static_cast<size_t>(n) + 2;
      break;
    }
    case '*':
    case '~': {
      const long long n = std::stoll(line);
      if (n < 0) {
        r.null = true;
        break;
      }
      if (!aggregate(static_cast<size_t>(n))) return std::nullopt;
      break;
    }
    case '%':
      if (!aggregate(2 * static_cast<size_t>(std::stoll(line)))) return std::nullopt;
      break;
    default:
      r.type = '-';
      r.text = "undecodable reply type";
      break;
  }
  *pos = next;
  return r;
}

// Every complete reply in `data`.
inline std::vector<RespReply> DecodeAllResp(const std::string& data) {
  std::vector<RespReply> out;
  size_t pos = 0;
  while (auto r = DecodeResp(data, &pos)) out.push_back(std::move(*r));
  return out;
}

// A command in the multibulk framing.
inline std::string EncodeResp(const std::vector<std::string>& args) {
  std::string out = "*" + std::to_string(args.size()) + "\r\n";
  for (const std::string& a : args) out += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
  return out;
}

}  // namespace segd::testutil
