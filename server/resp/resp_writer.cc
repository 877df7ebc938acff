#include "server/resp/resp_writer.h"

#include <charconv>

#include "absl/strings/str_cat.h"

namespace segd::server::resp {

void RespWriter::Header(char type, uint64_t n) {
  char buffer[24];
  buffer[0] = type;
  auto [end, ec] = std::to_chars(buffer + 1, buffer + sizeof(buffer) - 2, n);
  (void)ec;  // 20 digits always fit
  end[0] = '\r';
  end[1] = '\n';
  out_->append(buffer, static_cast<size_t>(end + 2 - buffer));
}

void RespWriter::Simple(absl::string_view text) { absl::StrAppend(out_, "+", text, "\r\n"); }

void RespWriter::Error(absl::string_view message) {
  const size_t start = out_->size();
  absl::StrAppend(out_, "-", message, "\r\n");
  for (size_t i = start + 1; i + 2 < out_->size(); ++i) {
    if ((*out_)[i] == '\r' || (*out_)[i] == '\n') (*out_)[i] = ' ';
  }
}

void RespWriter::Integer(int64_t value) {
  char buffer[24];
  buffer[0] = ':';
  auto [end, ec] = std::to_chars(buffer + 1, buffer + sizeof(buffer) - 2, value);
  (void)ec;
  end[0] = '\r';
  end[1] = '\n';
  out_->append(buffer, static_cast<size_t>(end + 2 - buffer));
}

void RespWriter::Bulk(absl::string_view bytes) {
  Header('$', bytes.size());
  out_->append(bytes.data(), bytes.size());
  out_->append("\r\n", 2);
}

void RespWriter::Null() { out_->append(protocol_ >= 3 ? "_\r\n" : "$-1\r\n"); }

void RespWriter::Bool(bool value) {
  if (protocol_ >= 3) {
    out_->append(value ? "#t\r\n" : "#f\r\n");
  } else {
    out_->append(value ? ":1\r\n" : ":0\r\n");
  }
}

void RespWriter::Double(double value) {
  std::string text = absl::StrCat(value);
  if (protocol_ >= 3) {
    absl::StrAppend(out_, ",", text, "\r\n");
  } else {
    Bulk(text);
  }
}

void RespWriter::Array(size_t n) { Header('*', n); }

void RespWriter::Set(size_t n) { Header(protocol_ >= 3 ? '~' : '*', n); }

void RespWriter::Map(size_t pairs) {
  if (protocol_ >= 3) {
    Header('%', pairs);
  } else {
    Header('*', 2 * uint64_t{pairs});
  }
}

void RespWriter::Verbatim(absl::string_view text) {
  if (protocol_ >= 3) {
    Header('=', text.size() + 4);
    absl::StrAppend(out_, "txt:", text, "\r\n");
  } else {
    Bulk(text);
  }
}

}  // namespace segd::server::resp
