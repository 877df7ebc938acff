#include "server/detail/change_json.h"

#include "server/json_writer.h"

namespace segd::server::detail {
namespace {

// A JSON string; escaped only when some byte needs it.
void AppendString(std::string* out, absl::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c == '"' || c == '\\' || c >= 0x7f) {
      out->push_back('"');
      AppendJsonEscaped(out, s);
      out->push_back('"');
      return;
    }
  }
  out->push_back('"');
  out->append(s.data(), s.size());
  out->push_back('"');
}

}  // namespace

const std::string& ChangeJson::QuotedName(engine::SegmentId id) {
  auto it = names_.find(id);
  if (it == names_.end()) {
    std::string quoted;
    AppendString(&quoted, engine_.SegmentName(id));
    it = names_.emplace(id, std::move(quoted)).first;
  }
  return it->second;
}

void ChangeJson::Append(std::string* out, const storage::Change& c) {
  out->append("{\"cursor\":\"");
  storage::AppendCursor(out, c.cursor);
  out->append("\",\"at\":\"");
  if (c.at != last_at_ || last_at_text_.empty()) {
    last_at_ = c.at;
    last_at_text_.clear();
    at_text_.Append(&last_at_text_, c.at);
  }
  out->append(last_at_text_);
  out->append("\",\"user_id\":");
  AppendString(out, engine_.UserName(c.user));
  out->append(",\"entered\":[");
  for (size_t i = 0; i < c.entered.size(); ++i) {
    if (i > 0) out->push_back(',');
    out->append(QuotedName(c.entered[i]));
  }
  out->append("],\"exited\":[");
  for (size_t i = 0; i < c.exited.size(); ++i) {
    if (i > 0) out->push_back(',');
    out->append(QuotedName(c.exited[i]));
  }
  out->append("],\"reason\":\"");
  out->append(engine::OpReasonName(c.reason));
  out->append("\"}");
}

}  // namespace segd::server::detail
