#include "engine/errors.h"

#include <algorithm>

#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace segd::engine {
namespace {

absl::Status WithCode(absl::Status status, absl::string_view code) {
  status.SetPayload(kErrorCodePayload, absl::Cord(code));
  return status;
}

}  // namespace

std::string Quote(absl::string_view input) {
  const bool path_like = absl::StrContains(input, "..") || absl::StrContains(input, '/') ||
                         absl::StrContains(input, '\\') ||
                         std::any_of(input.begin(), input.end(), [](char c) {
                           return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
                         });
  if (path_like) return "(a name that looks like a path, not repeated here)";
  return absl::StrCat("'", input, "'");
}

absl::Status BadRequest(absl::string_view message) {
  return WithCode(absl::InvalidArgumentError(message), "bad_request");
}

absl::Status SegmentNotFound(std::vector<std::string> names) {
  std::string message =
      names.size() == 1
          ? absl::StrCat("segment ", Quote(names[0]), " does not exist")
          : absl::StrCat("segments do not exist: ",
                         absl::StrJoin(names, ", ", [](std::string* out, const std::string& n) {
                           out->append(Quote(n));
                         }));
  absl::Status status = WithCode(absl::NotFoundError(message), "segment_not_found");
  for (std::string& n : names) {
    if (Quote(n).front() != '\'') n = Quote(n);
  }
  status.SetPayload(kSegmentsPayload, absl::Cord(absl::StrJoin(names, "\n")));
  return status;
}

absl::Status UserNotFound(absl::string_view external_id) {
  return WithCode(absl::NotFoundError(absl::StrCat("user ", Quote(external_id), " does not exist")),
                  "user_not_found");
}

absl::Status SegmentExists(absl::string_view name) {
  return WithCode(
      absl::AlreadyExistsError(absl::StrCat("segment ", Quote(name), " already exists")),
      "segment_exists");
}

absl::Status ConflictInRequest(absl::string_view message) {
  return WithCode(absl::FailedPreconditionError(message), "conflict_in_request");
}

absl::Status SyntaxError(absl::string_view message, size_t position) {
  absl::Status status = BadRequest(absl::StrCat(message, " at byte ", position));
  status.SetPayload(kPositionPayload, absl::Cord(absl::StrCat(position)));
  return status;
}

absl::Status LimitExceeded(absl::string_view message) {
  return WithCode(absl::ResourceExhaustedError(message), "bad_request");
}

absl::Status SegmentIsComputed(absl::string_view name) {
  return WithCode(absl::FailedPreconditionError(absl::StrCat(
                      "segment ", Quote(name),
                      " is a rule segment: its members follow its rule and cannot be changed by "
                      "hand")),
                  "segment_is_computed");
}

absl::Status RuleCycle(absl::string_view message) {
  return WithCode(absl::InvalidArgumentError(message), "rule_cycle");
}

absl::Status CursorExpired(absl::string_view message) {
  return WithCode(absl::OutOfRangeError(message), "cursor_expired");
}

absl::Status BeforeRetention(absl::string_view message) {
  return WithCode(absl::OutOfRangeError(message), "before_retention");
}

absl::Status AliasTaken(absl::string_view alias, absl::string_view owner) {
  absl::Status status = WithCode(
      absl::AlreadyExistsError(absl::StrCat("alias ", Quote(alias), " belongs to user ",
                                            Quote(owner), "; send \"merge\":true to merge them")),
      "alias_taken");
  status.SetPayload(kUserIdPayload, absl::Cord(owner));
  return status;
}

absl::Status Conflict(absl::string_view message) {
  return WithCode(absl::FailedPreconditionError(message), "conflict");
}

std::optional<std::string> UserIdOf(const absl::Status& status) {
  auto payload = status.GetPayload(kUserIdPayload);
  if (!payload) return std::nullopt;
  return std::string(*payload);
}

std::string ErrorCodeOf(const absl::Status& status) {
  if (auto code = status.GetPayload(kErrorCodePayload)) return std::string(*code);
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return "ok";
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return "bad_request";
    case absl::StatusCode::kNotFound:
      return "not_found";
    case absl::StatusCode::kAlreadyExists:
      return "conflict";
    case absl::StatusCode::kUnavailable:
      return "unavailable";
    default:
      return "internal";
  }
}

std::vector<std::string> SegmentsOf(const absl::Status& status) {
  auto payload = status.GetPayload(kSegmentsPayload);
  if (!payload) return {};
  return absl::StrSplit(std::string(*payload), '\n');
}

std::optional<size_t> PositionOf(const absl::Status& status) {
  auto payload = status.GetPayload(kPositionPayload);
  size_t position = 0;
  if (!payload || !absl::SimpleAtoi(std::string(*payload), &position)) return std::nullopt;
  return position;
}

}  // namespace segd::engine
