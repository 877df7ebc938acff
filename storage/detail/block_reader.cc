#include "storage/detail/block_reader.h"

#include "storage/detail/rocks_util.h"
#include "storage/oplog_format.h"

namespace segd::storage::detail {

absl::Status BlockReader::Get(uint64_t seq, uint32_t n, const engine::OpRecord** records) {
  if (records_.empty() || seq < first_ || seq + n > first_ + records_.size()) {
    if (absl::Status s = Load(seq); !s.ok()) return s;
    if (seq < first_ || seq + n > first_ + records_.size()) {
      return absl::NotFoundError("no such records");
    }
  }
  *records = &records_[seq - first_];
  return absl::OkStatus();
}

absl::Status BlockReader::LoadAtOrAfter(uint64_t seq) {
  if (absl::Status s = Load(seq); !s.ok() && !absl::IsNotFound(s)) return s;
  if (!records_.empty() && seq < first_ + records_.size()) return absl::OkStatus();
  it_->Seek(SeqKey(seq));
  return Decode();
}

absl::Status BlockReader::Next() {
  it_->Next();
  return Decode();
}

absl::Status BlockReader::Load(uint64_t seq) {
  // Sequential reading: the next block is the iterator's next entry.
  if (!records_.empty() && seq == first_ + records_.size() && it_->Valid()) {
    it_->Next();
  } else {
    it_->SeekForPrev(SeqKey(seq));
  }
  return Decode();
}

absl::Status BlockReader::Decode() {
  records_.clear();
  if (!it_->Valid()) {
    if (!it_->status().ok()) return FromRocks(it_->status(), "reading the operation log");
    return absl::NotFoundError("end of the operation log");
  }
  if (it_->key().size() != 8) return absl::DataLossError("corrupt key in the operation log");
  first_ = GetBigEndian64(it_->key().data());
  return DecodeBlock(View(it_->value()), &records_);
}

}  // namespace segd::storage::detail
