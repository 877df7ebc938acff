#include "engine/op_record.h"

namespace segd::engine {

const char* OpKindName(OpKind kind) {
  switch (kind) {
    case OpKind::kAdd:
      return "add";
    case OpKind::kRemove:
      return "remove";
  }
  return "unknown";
}

const char* OpReasonName(OpReason reason) {
  switch (reason) {
    case OpReason::kApi:
      return "api";
    case OpReason::kImport:
      return "import";
    case OpReason::kAutoPercent:
      return "auto_percent";
    case OpReason::kTtlExpired:
      return "ttl_expired";
    case OpReason::kSegmentDeleted:
      return "segment_deleted";
    case OpReason::kUserDeleted:
      return "user_deleted";
    case OpReason::kRule:
      return "rule";
    case OpReason::kMerge:
      return "merge";
  }
  return "unknown";
}

}  // namespace segd::engine
