#include "storage/detail/prefix_list_memtable.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdint>
#include <cstring>
#include <new>
#include <vector>

#include "absl/hash/hash.h"
#include "absl/strings/string_view.h"
#include "rocksdb/slice.h"
#include "rocksdb/slice_transform.h"
#include "rocksdb/version.h"

// The memtable relies on how RocksDB 7 treats a MemTableRep: iterators placed in an arena are
// never destroyed (see IteratorStorageCache), and iterators are used only on the thread that
// asked for them. Check both again before building against another major version.
static_assert(ROCKSDB_MAJOR == 7, "prefix_list_memtable was written against RocksDB 7");

namespace segd::storage::detail {
namespace {

using rocksdb::KeyHandle;
using rocksdb::MemTableRep;
using rocksdb::Slice;

// Nodes, list heads and the hash table hold only pointers and integers.
constexpr size_t kAlign = alignof(uint64_t);

// One key: the link to the next key of its prefix, then RocksDB's entry (the length-prefixed
// internal key, then the value).
struct Node {
  std::atomic<Node*> next{nullptr};

  const char* entry() const { return reinterpret_cast<const char*>(this + 1); }
  char* entry() { return reinterpret_cast<char*>(this + 1); }
};

// The keys of one prefix, in ascending order.
struct PrefixList {
  std::atomic<PrefixList*> next_in_slot{nullptr};
  std::atomic<Node*> head{nullptr};
  Node* tail = nullptr;  // the largest key; read and written by the inserting thread only
  uint64_t order = 0;    // the prefix's first 8 bytes, big-endian, zero-padded
  uint32_t prefix_size = 0;
};

// The internal key inside an entry (varint32 length, then the bytes).
Slice InternalKeyOf(const char* entry) {
  uint32_t size = 0;
  int shift = 0;
  const auto* p = reinterpret_cast<const unsigned char*>(entry);
  while (*p & 0x80) {
    size |= uint32_t{*p & 0x7fu} << shift;
    shift += 7;
    ++p;
  }
  size |= uint32_t{*p} << shift;
  return Slice(reinterpret_cast<const char*>(p + 1), size);
}

// An internal key ends in 8 bytes of sequence number and type.
Slice UserKeyOf(const Slice& internal_key) {
  return Slice(internal_key.data(), internal_key.size() - 8);
}

// The largest key of a list (lists are singly linked: a walk).
const Node* LastOf(const PrefixList* list) {
  const Node* node = list->head.load(std::memory_order_acquire);
  while (const Node* next = node->next.load(std::memory_order_acquire)) node = next;
  return node;
}

uint64_t OrderOf(const Slice& prefix) {
  uint64_t order = 0;
  const size_t n = std::min<size_t>(prefix.size(), 8);
  for (size_t i = 0; i < n; ++i) {
    order |= uint64_t{static_cast<unsigned char>(prefix[i])} << (56 - 8 * i);
  }
  return order;
}

// Iterators in RocksDB's arena mode are destroyed but never freed by RocksDB, and the Arena
// they would live in is not part of RocksDB's public headers. Their storage comes from this
// thread-local cache instead: a destroyed iterator returns its storage to the cache of the
// thread that destroys it, which can reuse it only once that destructor has returned. Every
// block is the size of one PrefixListIterator. A thread keeps what it got back beyond kKept
// until it next takes a block or exits; RocksDB's readers and flushes destroy their
// iterators on the thread that made them, so the cache stays at a few blocks.
class IteratorStorageCache {
 public:
  static constexpr size_t kKept = 8;

  ~IteratorStorageCache() {
    for (void* p : free_) ::operator delete(p);
  }
  void* Take(size_t size) {
    // Storage returned beyond what is kept is freed here, where it is certainly unused.
    while (free_.size() > kKept) {
      ::operator delete(free_.back());
      free_.pop_back();
    }
    if (free_.empty()) return ::operator new(size);
    void* p = free_.back();
    free_.pop_back();
    return p;
  }
  void Return(void* p) { free_.push_back(p); }

 private:
  std::vector<void*> free_;
};

thread_local IteratorStorageCache iterator_storage;

class PrefixListIterator;

class PrefixListRep;

class PrefixListIterator final : public MemTableRep::Iterator {
 public:
  PrefixListIterator(const PrefixListRep* rep, bool total_order, bool cached_storage)
      : rep_(rep), total_order_(total_order), cached_storage_(cached_storage) {}
  ~PrefixListIterator() override {
    if (cached_storage_) iterator_storage.Return(this);
  }

  bool Valid() const override { return node_ != nullptr; }
  const char* key() const override { return node_->entry(); }
  void Next() override;
  void Prev() override;
  void Seek(const Slice& internal_key, const char* memtable_key) override;
  void SeekForPrev(const Slice& internal_key, const char* memtable_key) override;
  void SeekToFirst() override;
  void SeekToLast() override;

 private:
  // Sorts the memtable's prefix lists, once; the iterator is in total order from then on.
  void BuildOrder();
  // Positions on the first key of order_[index_], or invalid past the last list.
  void EnterList(size_t index);
  // <0, 0, >0 as the node's key is below, equal to or above the seek target.
  int CompareToTarget(const Node* node, const Slice& internal_key, const char* memtable_key) const;

  const PrefixListRep* rep_;
  bool total_order_;
  const bool cached_storage_;
  bool ordered_ = false;
  std::vector<const PrefixList*> order_;  // all lists, ascending, once ordered_
  size_t index_ = 0;                      // position of list_ in order_ (total order)
  const PrefixList* list_ = nullptr;      // the list node_ is in, or was sought in
  const Node* node_ = nullptr;
};

class PrefixListRep final : public MemTableRep {
 public:
  PrefixListRep(const KeyComparator& compare, rocksdb::Allocator* allocator,
                const rocksdb::SliceTransform* transform, size_t slots)
      : MemTableRep(allocator),
        compare_(compare),
        transform_(transform),
        mask_(std::bit_ceil(std::max<size_t>(slots, 1)) - 1) {
    char* table = AllocateAligned(sizeof(std::atomic<PrefixList*>) * (mask_ + 1));
    slots_ = new (table) std::atomic<PrefixList*>[mask_ + 1];
    for (size_t i = 0; i <= mask_; ++i) slots_[i].store(nullptr, std::memory_order_relaxed);
  }

  KeyHandle Allocate(const size_t len, char** buf) override {
    Node* node = new (AllocateAligned(sizeof(Node) + len)) Node;
    *buf = node->entry();
    return node;
  }

  void Insert(KeyHandle handle) override {
    Node* node = static_cast<Node*>(handle);
    const Slice prefix = PrefixOfEntry(node->entry());
    std::atomic<PrefixList*>& slot = SlotOf(prefix);
    PrefixList* list = const_cast<PrefixList*>(FindInSlot(slot, prefix));
    if (list == nullptr) {
      list = new (AllocateAligned(sizeof(PrefixList))) PrefixList;
      list->order = OrderOf(prefix);
      list->prefix_size = static_cast<uint32_t>(prefix.size());
      list->head.store(node, std::memory_order_relaxed);
      list->tail = node;
      list->next_in_slot.store(slot.load(std::memory_order_relaxed), std::memory_order_relaxed);
      slot.store(list, std::memory_order_release);
      return;
    }
    if (compare_(node->entry(), list->tail->entry()) > 0) {
      list->tail->next.store(node, std::memory_order_release);
      list->tail = node;
      return;
    }
    // Below the prefix's largest key: walk to its place.
    Node* before = nullptr;
    Node* after = list->head.load(std::memory_order_relaxed);
    while (compare_(after->entry(), node->entry()) < 0) {
      before = after;
      after = after->next.load(std::memory_order_relaxed);
    }
    node->next.store(after, std::memory_order_relaxed);
    if (before != nullptr) {
      before->next.store(node, std::memory_order_release);
    } else {
      list->head.store(node, std::memory_order_release);
    }
  }

  bool Contains(const char* key) const override {
    const PrefixList* list = FindList(PrefixOfEntry(key));
    if (list == nullptr) return false;
    for (const Node* n = list->head.load(std::memory_order_acquire); n != nullptr;
         n = n->next.load(std::memory_order_acquire)) {
      const int c = compare_(n->entry(), key);
      if (c == 0) return true;
      if (c > 0) return false;
    }
    return false;
  }

  void Get(const rocksdb::LookupKey& key, void* callback_args,
           bool (*callback)(void* arg, const char* entry)) override;

  // Everything, the hash table included, is in the memtable's arena, which RocksDB counts.
  size_t ApproximateMemoryUsage() override { return 0; }

  Iterator* GetIterator(rocksdb::Arena* arena) override { return NewIterator(arena, true); }
  Iterator* GetDynamicPrefixIterator(rocksdb::Arena* arena) override {
    return NewIterator(arena, false);
  }

  // For the iterator.
  const KeyComparator& compare() const { return compare_; }

  bool InDomain(const Slice& user_key) const { return transform_->InDomain(user_key); }

  Slice PrefixOf(const Slice& user_key) const {
    // Keys outside the extractor's domain are their own prefix: shorter than any in-domain
    // prefix, they still sort by their bytes among the lists.
    return transform_->InDomain(user_key) ? transform_->Transform(user_key) : user_key;
  }

  Slice PrefixOfEntry(const char* entry) const { return PrefixOf(UserKeyOf(InternalKeyOf(entry))); }

  const PrefixList* FindList(const Slice& prefix) const {
    return FindInSlot(SlotOf(prefix), prefix);
  }

  // The lists of the whole table, in key order.
  // A flush sorts every prefix of the table (hundreds of thousands for by_user). The sort
  // compares keys held beside the pointers: comparing through the pointers took a cache miss
  // per comparison, and was the largest single cost of a by_user flush.
  std::vector<const PrefixList*> SortedLists() const {
    struct Keyed {
      uint64_t order;
      uint32_t prefix_size;
      const PrefixList* list;
    };
    std::vector<Keyed> keyed;
    for (size_t i = 0; i <= mask_; ++i) {
      for (const PrefixList* l = slots_[i].load(std::memory_order_acquire); l != nullptr;
           l = l->next_in_slot.load(std::memory_order_acquire)) {
        keyed.push_back({l->order, l->prefix_size, l});
      }
    }
    std::sort(keyed.begin(), keyed.end(), [this](const Keyed& a, const Keyed& b) {
      if (a.order != b.order) return a.order < b.order;
      // Equal first 8 bytes: prefixes of at most 8 bytes order by length, longer ones by
      // their bytes (ComparePrefix).
      if (a.prefix_size <= 8 && b.prefix_size <= 8) return a.prefix_size < b.prefix_size;
      return CompareLists(a.list, b.list) < 0;
    });
    std::vector<const PrefixList*> lists;
    lists.reserve(keyed.size());
    for (const Keyed& k : keyed) lists.push_back(k.list);
    return lists;
  }

  // <0, 0, >0 as the list's prefix is below, equal to or above `prefix`, bytewise.
  int ComparePrefix(const PrefixList* list, const Slice& prefix) const {
    const uint64_t order = OrderOf(prefix);
    if (list->order != order) return list->order < order ? -1 : 1;
    if (list->prefix_size <= 8 && prefix.size() <= 8) {
      return list->prefix_size < prefix.size() ? -1 : list->prefix_size > prefix.size() ? 1 : 0;
    }
    return PrefixOfList(list).compare(prefix);
  }

 private:
  char* AllocateAligned(size_t bytes) {
    char* raw = nullptr;
    MemTableRep::Allocate(bytes + kAlign - 1, &raw);
    const auto p = reinterpret_cast<uintptr_t>(raw);
    return reinterpret_cast<char*>((p + kAlign - 1) & ~uintptr_t{kAlign - 1});
  }

  std::atomic<PrefixList*>& SlotOf(const Slice& prefix) const {
    return slots_[absl::Hash<absl::string_view>{}(absl::string_view(prefix.data(), prefix.size())) &
                  mask_];
  }

  const PrefixList* FindInSlot(const std::atomic<PrefixList*>& slot, const Slice& prefix) const {
    const uint64_t order = OrderOf(prefix);
    for (const PrefixList* l = slot.load(std::memory_order_acquire); l != nullptr;
         l = l->next_in_slot.load(std::memory_order_acquire)) {
      if (l->order != order || l->prefix_size != prefix.size()) continue;
      if (prefix.size() <= 8 || PrefixOfList(l) == prefix) return l;
    }
    return nullptr;
  }

  Slice PrefixOfList(const PrefixList* list) const {
    return PrefixOfEntry(list->head.load(std::memory_order_acquire)->entry());
  }

  int CompareLists(const PrefixList* a, const PrefixList* b) const {
    if (a->order != b->order) return a->order < b->order ? -1 : 1;
    return ComparePrefix(a, PrefixOfList(b));
  }

  Iterator* NewIterator(rocksdb::Arena* arena, bool total_order) const {
    if (arena == nullptr) return new PrefixListIterator(this, total_order, false);
    void* storage = iterator_storage.Take(sizeof(PrefixListIterator));
    return new (storage) PrefixListIterator(this, total_order, true);
  }

  const KeyComparator& compare_;
  const rocksdb::SliceTransform* transform_;
  const size_t mask_;
  std::atomic<PrefixList*>* slots_ = nullptr;
};

// rocksdb::LookupKey (db/lookup_key.h) is not in RocksDB's public headers. RocksDB 7 lays it
// out as three pointers first: the memtable key (a varint32 length, then the internal key),
// the internal key, and their end. Get checks that reading before use.
struct LookupKeyLayout {
  const char* start;
  const char* kstart;
  const char* end;
};

// The internal key and memtable key of `key`, if its layout reads as expected.
bool ReadLookupKey(const rocksdb::LookupKey& key, Slice* internal_key, const char** memtable_key) {
  const auto* layout = reinterpret_cast<const LookupKeyLayout*>(&key);
  uint32_t length = 0;
  const char* p = layout->start;
  for (int shift = 0; shift <= 28; shift += 7) {
    if (p >= layout->kstart) return false;
    const auto byte = static_cast<uint8_t>(*p++);
    length |= uint32_t{byte & 0x7fu} << shift;
    if ((byte & 0x80) == 0) break;
  }
  if (p != layout->kstart || layout->end - layout->kstart != static_cast<ptrdiff_t>(length)) {
    return false;
  }
  *internal_key = Slice(layout->kstart, length);
  *memtable_key = layout->start;
  return true;
}

// A point lookup: what RocksDB's default MemTableRep::Get does (seek a prefix iterator to the
// key, then hand entries to the callback until it says stop), with the iterator on the stack.
// The default asks for an iterator without an arena and never frees it; relying on that leak
// would free twice under a RocksDB that fixed it.
void PrefixListRep::Get(const rocksdb::LookupKey& key, void* callback_args,
                        bool (*callback)(void* arg, const char* entry)) {
  Slice internal_key;
  const char* memtable_key = nullptr;
  if (!ReadLookupKey(key, &internal_key, &memtable_key)) {
    // Not the layout this was written for: RocksDB's own lookup (one leaked iterator each).
    MemTableRep::Get(key, callback_args, callback);
    return;
  }
  PrefixListIterator it(this, /*total_order=*/false, /*cached_storage=*/false);
  for (it.Seek(internal_key, memtable_key); it.Valid() && callback(callback_args, it.key());
       it.Next()) {
  }
}

void PrefixListIterator::BuildOrder() {
  if (!ordered_) {
    order_ = rep_->SortedLists();
    ordered_ = true;
  }
  total_order_ = true;
}

void PrefixListIterator::EnterList(size_t index) {
  index_ = index;
  list_ = index < order_.size() ? order_[index] : nullptr;
  node_ = list_ != nullptr ? list_->head.load(std::memory_order_acquire) : nullptr;
  // A flush walks the lists in order, and each list and its first key are a cache miss of
  // their own (most by_user lists hold one or two keys). Fetch both a few lists ahead: the
  // list kListsAhead on, and the first key of the list half as far on, whose list was fetched
  // by an earlier call. Prefetches never fault, and a stale head only costs a useless fetch.
  constexpr size_t kListsAhead = 8;
  if (index + kListsAhead < order_.size()) __builtin_prefetch(order_[index + kListsAhead]);
  if (index + kListsAhead / 2 < order_.size()) {
    __builtin_prefetch(order_[index + kListsAhead / 2]->head.load(std::memory_order_relaxed));
  }
}

int PrefixListIterator::CompareToTarget(const Node* node, const Slice& internal_key,
                                        const char* memtable_key) const {
  return memtable_key != nullptr ? rep_->compare()(node->entry(), memtable_key)
                                 : rep_->compare()(node->entry(), internal_key);
}

void PrefixListIterator::Next() {
  node_ = node_->next.load(std::memory_order_acquire);
  if (node_ == nullptr && total_order_) EnterList(index_ + 1);
}

void PrefixListIterator::Prev() {
  // Lists are singly linked: find the key before node_ from the list's head.
  const Node* before = nullptr;
  for (const Node* n = list_->head.load(std::memory_order_acquire); n != node_;
       n = n->next.load(std::memory_order_acquire)) {
    before = n;
  }
  if (before != nullptr || !total_order_ || index_ == 0) {
    node_ = before;
    return;
  }
  EnterList(index_ - 1);
  node_ = LastOf(list_);
}

void PrefixListIterator::Seek(const Slice& internal_key, const char* memtable_key) {
  const Slice user_key = UserKeyOf(internal_key);
  const Slice prefix = rep_->PrefixOf(user_key);
  if (total_order_ || !rep_->InDomain(user_key)) {
    // A target outside the extractor's domain has no prefix to look up: the keys at and
    // after it may be in any list.
    BuildOrder();
    const auto it = std::lower_bound(
        order_.begin(), order_.end(), prefix,
        [this](const PrefixList* l, const Slice& p) { return rep_->ComparePrefix(l, p) < 0; });
    EnterList(static_cast<size_t>(it - order_.begin()));
    if (list_ == nullptr || rep_->ComparePrefix(list_, prefix) != 0) return;
  } else {
    list_ = rep_->FindList(prefix);
    node_ = list_ != nullptr ? list_->head.load(std::memory_order_acquire) : nullptr;
  }
  while (node_ != nullptr && CompareToTarget(node_, internal_key, memtable_key) < 0) {
    node_ = node_->next.load(std::memory_order_acquire);
  }
  if (node_ == nullptr && total_order_) EnterList(index_ + 1);
}

void PrefixListIterator::SeekForPrev(const Slice& internal_key, const char* memtable_key) {
  Seek(internal_key, memtable_key);
  if (node_ != nullptr) {
    if (CompareToTarget(node_, internal_key, memtable_key) > 0) Prev();
    return;
  }
  if (total_order_) {
    SeekToLast();
  } else if (list_ != nullptr) {
    // Every key of the sought prefix is below the target: the last one.
    node_ = LastOf(list_);
  }
}

void PrefixListIterator::SeekToFirst() {
  BuildOrder();
  EnterList(0);
}

void PrefixListIterator::SeekToLast() {
  BuildOrder();
  if (order_.empty()) {
    EnterList(0);
    return;
  }
  EnterList(order_.size() - 1);
  node_ = LastOf(list_);
}

class PrefixListMemTableFactory final : public rocksdb::MemTableRepFactory {
 public:
  explicit PrefixListMemTableFactory(size_t slots) : slots_(slots) {}

  using rocksdb::MemTableRepFactory::CreateMemTableRep;
  MemTableRep* CreateMemTableRep(const MemTableRep::KeyComparator& compare,
                                 rocksdb::Allocator* allocator,
                                 const rocksdb::SliceTransform* transform,
                                 rocksdb::Logger* logger) override {
    // Without a prefix extractor there are no prefixes to keep lists of.
    if (transform == nullptr) {
      return fallback_.CreateMemTableRep(compare, allocator, transform, logger);
    }
    return new PrefixListRep(compare, allocator, transform, slots_);
  }
  const char* Name() const override { return "segd.PrefixListMemTableFactory"; }

 private:
  const size_t slots_;
  rocksdb::SkipListFactory fallback_;
};

}  // namespace

std::shared_ptr<rocksdb::MemTableRepFactory> NewPrefixListMemTableFactory(size_t slots) {
  return std::make_shared<PrefixListMemTableFactory>(slots);
}

}  // namespace segd::storage::detail
