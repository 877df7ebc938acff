#include "storage/change_feed.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "engine/errors.h"
#include "storage/change_tail.h"

namespace segd::storage {
namespace {

// Records read from the ring per step.
constexpr uint64_t kTailStep = 4096;

// Groups records into changes and keeps what the page needs.
class PageBuilder {
 public:
  PageBuilder(const ChangeQuery& query, ChangePage* page) : query_(query), page_(page) {}

  // Takes the next record (in seq order). Returns false once the page is full; the record
  // was then not taken.
  bool Take(uint64_t seq, const engine::OpRecord& r, bool block_start) {
    if (open_ && (block_start || r.user != change_.user || r.reason != change_.reason ||
                  r.at != change_.at)) {
      if (!Flush()) return false;
    }
    if (!open_) {
      open_ = true;
      change_.at = r.at;
      change_.user = r.user;
      change_.reason = r.reason;
      change_.entered.clear();
      change_.exited.clear();
    }
    change_.cursor = seq;
    if (r.op == engine::OpKind::kAdd && r.refresh) return true;
    if (!Wanted(r.segment)) return true;
    (r.op == engine::OpKind::kAdd ? change_.entered : change_.exited).push_back(r.segment);
    return true;
  }

  // Ends the open change (at a batch boundary: the end of what is published). Returns false
  // if the page is full.
  bool Flush() {
    if (!open_) return true;
    if (page_->changes.size() == query_.limit) return false;
    open_ = false;
    page_->next = change_.cursor;
    if (!change_.entered.empty() || !change_.exited.empty()) page_->changes.push_back(change_);
    return true;
  }

  bool full() const { return page_->changes.size() == query_.limit; }

 private:
  bool Wanted(engine::SegmentId s) const {
    return query_.segments.empty() ||
           std::binary_search(query_.segments.begin(), query_.segments.end(), s);
  }

  const ChangeQuery& query_;
  ChangePage* page_;
  bool open_ = false;
  Change change_;
};

absl::Status Expired(uint64_t after) {
  return engine::CursorExpired(absl::StrCat(
      "cursor ", FormatCursor(after),
      " is older than the retained history; start again from '0' (the oldest retained change) "
      "or from now"));
}

}  // namespace

void AppendCursor(std::string* out, uint64_t cursor) {
  static constexpr char kHex[] = "0123456789abcdef";
  char text[16];
  for (int i = 15; i >= 0; --i, cursor >>= 4) text[i] = kHex[cursor & 15];
  out->append(text, sizeof text);
}

std::string FormatCursor(uint64_t cursor) {
  std::string text;
  AppendCursor(&text, cursor);
  return text;
}

absl::Status ParseCursor(absl::string_view text, std::optional<uint64_t>* after) {
  if (text == "0") {
    *after = std::nullopt;
    return absl::OkStatus();
  }
  uint64_t v = 0;
  bool ok = text.size() == 16;
  for (size_t i = 0; ok && i < text.size(); ++i) {
    const char c = text[i];
    int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (digit < 0) ok = false;
    v = v << 4 | static_cast<uint64_t>(digit & 15);
  }
  if (!ok) {
    return engine::BadRequest(absl::StrCat(
        "malformed cursor ", engine::Quote(text),
        ": use a cursor segd returned (16 hex digits) or '0' for the oldest retained change"));
  }
  *after = v;
  return absl::OkStatus();
}

absl::StatusOr<ChangePage> ReadChanges(const OpLog& log, const ChangeQuery& query) {
  const ChangeTail& tail = log.changes();
  const uint64_t end = tail.published();
  const engine::TimeMs cutoff = log.RetentionCutoff();
  ChangePage page;
  uint64_t from;
  if (query.after) {
    if (*query.after >= end) {
      if (*query.after == end - 1) {
        page.next = *query.after;
        return page;
      }
      return engine::BadRequest(absl::StrCat("cursor ", FormatCursor(*query.after),
                                             " is past the end of the log (", FormatCursor(end - 1),
                                             ")"));
    }
    from = *query.after + 1;
  } else {
    // "0": the first block retention keeps (its newest record is within the retention).
    from = end;
    absl::Status s =
        log.ForEachBlock(1, [&](uint64_t first, absl::Span<const engine::OpRecord> block) {
          if (first >= end) return false;
          if (block.back().at < cutoff) return true;
          from = first;
          return false;
        });
    if (!s.ok()) return s;
  }
  page.next = from - 1;
  PageBuilder builder(query, &page);
  std::vector<TailRecord> records;
  bool check_expiry = query.after.has_value();
  while (from < end) {
    records.clear();
    const uint64_t to = std::min(end, from + kTailStep);
    if (tail.Read(from, to, &records) && !(check_expiry && records[0].record.at < cutoff)) {
      check_expiry = false;
      for (size_t i = 0; i < records.size(); ++i) {
        if (!builder.Take(from + i, records[i].record, records[i].block_start)) return page;
      }
      from = to;
      continue;
    }
    // Not in the ring (older, or the writer overtook this reader): the log's blocks, until the
    // ring holds what comes next. The first block decides whether the cursor has expired, by
    // the rule retention deletes blocks with (their newest record).
    bool expired = check_expiry, full = false;
    const uint64_t before = from;
    absl::Status s = log.ForEachBlock(from, [&](uint64_t first,
                                                absl::Span<const engine::OpRecord> block) {
      if (first >= end) return false;
      if (check_expiry) {
        check_expiry = false;
        expired = first > from || block.back().at < cutoff;
        if (expired) return false;
      }
      for (uint64_t seq = std::max(first, from); seq < first + block.size() && seq < end; ++seq) {
        if (!builder.Take(seq, block[seq - first], seq == first)) {
          full = true;
          return false;
        }
        from = seq + 1;
      }
      return from < end && from < tail.first_held();
    });
    if (!s.ok()) return s;
    if (expired) return Expired(*query.after);
    if (full) return page;
    // A gap: retention dropped blocks while this reader was between them.
    if (from == before) return Expired(from - 1);
  }
  if (builder.Flush()) page.next = end - 1;
  return page;
}

}  // namespace segd::storage
