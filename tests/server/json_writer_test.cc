// Unit tests: JsonWriter: escaping, invalid UTF-8 and times.

#include "server/json_writer.h"

#include "gtest/gtest.h"

namespace segd::server {
namespace {

TEST(JsonWriter, EscapesQuotesBackslashesAndControlCharacters) {
  std::string out;
  JsonWriter json(&out);
  json.BeginObject().Key("k\"").String(std::string("a\"b\\c\n\t\x01\x7f\xc3\xa9", 11));
  json.Key("n").Null().Key("list").BeginArray().Int(-3).Uint(4).Bool(false).Double(0.25);
  json.EndArray().EndObject();
  EXPECT_EQ(out,
            "{\"k\\\"\":\"a\\\"b\\\\c\\n\\t\\u0001\\u007f\xc3\xa9\",\"n\":null,"
            "\"list\":[-3,4,false,0.25]}");
}

TEST(JsonWriter, ReplacesBytesThatAreNotUtf8) {
  std::string out;
  AppendJsonEscaped(&out,
                    std::string("/qu\xb4ry \xe2\x82\xac \xed\xa0\x80 \xf4\x90\x80\x80 \xc3", 21));
  EXPECT_EQ(out,
            "/qu\\ufffdry \xe2\x82\xac \\ufffd\\ufffd\\ufffd \\ufffd\\ufffd\\ufffd\\ufffd "
            "\\ufffd");
}

TEST(JsonWriter, WritesTimesAndNullTimes) {
  std::string out;
  JsonWriter json(&out);
  json.BeginArray().Time(1795341600123, 0).Time(0, 0).EndArray();
  EXPECT_EQ(out, "[\"2026-11-22T10:00:00.123Z\",null]");
}

}  // namespace
}  // namespace segd::server
