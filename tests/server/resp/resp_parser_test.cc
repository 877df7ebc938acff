#include "server/resp/resp_parser.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace segd::server::resp {
namespace {

using Result = RespParser::Result;
using Command = std::vector<std::string>;

// Feeds `input` to a parser in pieces of the given sizes (the rest in one piece), as a
// connection would: appending, consuming what each command took. Returns the commands, and
// the error text if one ended the input.
struct Parsed {
  std::vector<Command> commands;
  std::string error;
};

Parsed Feed(RespParser& parser, const std::string& input, const std::vector<size_t>& pieces) {
  Parsed parsed;
  std::string buffer;
  size_t fed = 0;
  size_t piece = 0;
  std::vector<absl::string_view> args;
  while (true) {
    size_t consumed = 0;
    Result r = parser.Next(buffer, &args, &consumed);
    if (r == Result::kError) {
      parsed.error = parser.error();
      return parsed;
    }
    if (r == Result::kCommand) {
      parsed.commands.emplace_back(args.begin(), args.end());
      buffer.erase(0, consumed);
      continue;
    }
    buffer.erase(0, consumed);
    if (fed == input.size()) return parsed;
    size_t n = piece < pieces.size() ? pieces[piece++] : input.size() - fed;
    n = std::min(n, input.size() - fed);
    buffer.append(input, fed, n);
    fed += n;
  }
}

Parsed FeedWhole(const std::string& input, RespLimits limits = {}) {
  RespParser parser(limits);
  return Feed(parser, input, {});
}

std::string Multibulk(const Command& command) {
  std::string out = "*" + std::to_string(command.size()) + "\r\n";
  for (const std::string& a : command) {
    out += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
  }
  return out;
}

TEST(RespParserTest, ParsesPipelinedMultibulkCommands) {
  const std::string input = Multibulk({"SADD", "seg", "u1", "u2"}) + Multibulk({"PING"}) +
                            Multibulk({"SET", std::string("a\0\r\nb", 5)});
  Parsed p = FeedWhole(input);
  ASSERT_EQ(p.error, "");
  ASSERT_EQ(p.commands.size(), 3u);
  EXPECT_EQ(p.commands[0], (Command{"SADD", "seg", "u1", "u2"}));
  EXPECT_EQ(p.commands[1], (Command{"PING"}));
  EXPECT_EQ(p.commands[2][1], std::string("a\0\r\nb", 5));  // binary-safe
}

// Model: however the bytes are split across reads, the same commands come out.
TEST(RespParserTest, AnySplitOfTheInputGivesTheSameCommands) {
  std::mt19937 rng(7);
  std::vector<Command> expected;
  std::string input;
  for (int i = 0; i < 200; ++i) {
    Command c;
    const int n = 1 + static_cast<int>(rng() % 5);
    for (int j = 0; j < n; ++j) {
      std::string arg(rng() % 40, 'x');
      for (char& ch : arg) ch = static_cast<char>(rng() % 256);
      c.push_back(arg);
    }
    expected.push_back(c);
    input += Multibulk(c);
    if (rng() % 10 == 0) input += "*0\r\n";  // empty commands are skipped
  }
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<size_t> pieces;
    for (size_t total = 0; total < input.size();) {
      size_t n = 1 + rng() % (trial < 5 ? 3 : 200);
      pieces.push_back(n);
      total += n;
    }
    RespParser parser;
    Parsed p = Feed(parser, input, pieces);
    ASSERT_EQ(p.error, "") << "trial " << trial;
    ASSERT_EQ(p.commands, expected) << "trial " << trial;
  }
}

TEST(RespParserTest, ParsesInlineCommandsWithRedisQuoting) {
  Parsed p = FeedWhole(
      "PING\r\nSADD seg  u1\tu2\n\r\n"
      "ECHO \"a b\\n\\x41\" 'it\\'s'\r\n");
  ASSERT_EQ(p.error, "");
  ASSERT_EQ(p.commands.size(), 3u);
  EXPECT_EQ(p.commands[0], (Command{"PING"}));
  EXPECT_EQ(p.commands[1], (Command{"SADD", "seg", "u1", "u2"}));
  EXPECT_EQ(p.commands[2], (Command{"ECHO", "a b\nA", "it's"}));
}

TEST(RespParserTest, IncompleteInputWaitsForMore) {
  for (std::string partial : {"*2\r\n$4\r\nPI", "*2", "*2\r\n$4", "PING", "*1\r\n$4\r\nPING\r"}) {
    RespParser parser;
    std::vector<absl::string_view> args;
    size_t consumed = 0;
    EXPECT_EQ(parser.Next(partial, &args, &consumed), Result::kNeedMore) << partial;
  }
}

TEST(RespParserTest, MalformedFramingIsAnError) {
  struct Case {
    std::string input;
    std::string error;
  };
  const Case cases[] = {
      {"*x\r\n", "Protocol error: invalid multibulk length"},
      {"*-2\r\n", "Protocol error: invalid multibulk length"},
      {"*99999999999\r\n", "Protocol error: invalid multibulk length"},
      {"*1\r\n+PING\r\n", "Protocol error: expected '$', got '+'"},
      {"*1\r\n$-1\r\n", "Protocol error: invalid bulk length"},
      {"*1\r\n$abc\r\n", "Protocol error: invalid bulk length"},
      {"*1\r\n$99999999999999\r\n", "Protocol error: invalid bulk length"},
      {"*1\r\n$4\r\nPINGxx", "Protocol error: bulk string not ended by CRLF"},
      {"*1" + std::string(100, '1'), "Protocol error: invalid multibulk length"},
      {"ECHO \"unclosed\r\n", "Protocol error: unbalanced quotes in request"},
      {"ECHO \"a\"b\r\n", "Protocol error: unbalanced quotes in request"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(FeedWhole(c.input).error, c.error) << c.input;
  }
}

TEST(RespParserTest, LimitsRefuseOversizedCommandsBeforeTheyArrive) {
  RespLimits limits{.max_args = 3, .max_bulk = 8, .max_command = 64, .max_inline = 16};
  EXPECT_EQ(FeedWhole("*4\r\n", limits).error, "Protocol error: invalid multibulk length");
  EXPECT_EQ(FeedWhole("*1\r\n$9\r\n", limits).error, "Protocol error: invalid bulk length");
  EXPECT_EQ(FeedWhole(Multibulk({"abcdefgh", "abcdefgh", "abcdefgh"}) + "", limits).error,
            "");  // 3 × 8 bytes plus framing fits in 64
  EXPECT_EQ(FeedWhole(std::string(17, 'a'), limits).error,
            "Protocol error: too big inline request");
  RespLimits tight_total{.max_args = 100, .max_bulk = 8, .max_command = 30};
  EXPECT_EQ(FeedWhole(Multibulk({"abcdefgh", "abcdefgh", "abcdefgh"}), tight_total).error,
            "Protocol error: command larger than 30 bytes");
}

TEST(RespParserTest, NewLimitsApplyFromTheNextCommand) {
  RespParser parser(RespLimits{.max_args = 2});
  std::vector<absl::string_view> args;
  size_t consumed = 0;
  const std::string three = Multibulk({"a", "b", "c"});
  EXPECT_EQ(parser.Next(three, &args, &consumed), Result::kError);
  parser.set_limits(RespLimits{.max_args = 3});
  EXPECT_EQ(parser.Next(three, &args, &consumed), Result::kCommand);
  EXPECT_EQ(consumed, three.size());
}

TEST(RespParserTest, NeededGrowsWithDeclaredLengths) {
  RespParser parser;
  std::vector<absl::string_view> args;
  size_t consumed = 0;
  std::string start = "*2\r\n$5\r\nHELLO\r\n$100000\r\n";
  EXPECT_EQ(parser.Next(start, &args, &consumed), Result::kNeedMore);
  EXPECT_TRUE(parser.in_command());
  EXPECT_GE(parser.needed(), start.size() + 100000 + 2);
}

}  // namespace
}  // namespace segd::server::resp
