#pragma once

// A RocksDB memtable for a column family whose keys start with a fixed-length prefix (a
// user id) and whose writes spread over many prefixes while each prefix's own keys mostly
// arrive in ascending order. That is `by_user`: every write lands on some user, any user.
//
// RocksDB's default skiplist memtable places every key by searching the whole table: for keys
// spread over the id space, a chain of cache misses (4-5 µs per insert here). This memtable
// keeps one list per prefix instead, in a fixed hash table of prefixes: an insert is a hash
// lookup and, in the common ascending case, an append to the prefix's list (one or two cache
// misses). A key that arrives below its prefix's newest key is placed by walking the prefix's
// list, which costs the number of that prefix's keys in the memtable.
//
// Reads:
//  - A prefix seek (RocksDB's dynamic prefix iterator; what a scan with a prefix extractor
//    and without total_order_seek gets) finds the prefix's list through the hash table and
//    stays within that list: past its end the iterator is invalid, which RocksDB allows for
//    prefix seeks.
//  - A total-order iterator (flush, total_order_seek, SeekToFirst/SeekToLast) first sorts the
//    table's prefixes, which costs O(p log p) for p prefixes, then walks the lists in order.
//  - Prev and SeekForPrev walk a prefix's list from its head: O(keys of that prefix).
//
// REQUIRES, of the column family that uses it:
//  - the bytewise comparator (prefixes are ordered by their bytes);
//  - a prefix extractor whose in-domain keys of one prefix form a contiguous key range (a
//    fixed-length prefix does); keys outside its domain get a list of their own;
//  - allow_concurrent_memtable_write = false (inserts come from one thread at a time).
//
//  - A point lookup (Get) is a prefix seek.
//
// Memory: each key carries an 8-byte link (plus up to 7 bytes of alignment), each prefix a
// 40-byte list head, and the hash table 8 bytes per slot, all from the memtable's arena, which
// RocksDB counts towards the memtable's size. Iterators are not: RocksDB's Arena is not in its
// public headers, so an iterator RocksDB would place in one takes its storage from a small
// per-thread cache instead (see IteratorStorageCache).
//
// Thread safety: RocksDB serialises inserts (see REQUIRES); readers and iterators run
// concurrently with the one inserting thread. A node or list head, once published, is never
// moved or freed before the memtable is destroyed; links are published with release stores
// and read with acquire loads, so a reader sees every key inserted before it started.

#include <cstddef>
#include <memory>

#include "rocksdb/memtablerep.h"

namespace segd::storage::detail {

// `slots` is the number of hash slots per memtable, rounded up to a power of two; about the
// number of distinct prefixes a memtable holds keeps the chains short.
std::shared_ptr<rocksdb::MemTableRepFactory> NewPrefixListMemTableFactory(size_t slots);

}  // namespace segd::storage::detail
