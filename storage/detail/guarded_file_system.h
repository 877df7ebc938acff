#pragma once

// A RocksDB file system that works by path only while the data directory is where segd
// opened it (DataDir::CheckInPlace): creating, reopening, deleting, renaming and linking
// files, and creating or deleting directories, are refused with an I/O error once the
// directory was moved or deleted. Reads and writes through files already open are let
// through: they reach the old directory, never whatever now lives at the path.
//
// Thread safety: as RocksDB's default file system; CheckInPlace is thread-safe.

#include <memory>

namespace rocksdb {
class FileSystem;
}  // namespace rocksdb

namespace segd::storage {
class DataDir;
namespace detail {

// `dir` must outlive the returned file system's use by RocksDB.
std::shared_ptr<rocksdb::FileSystem> NewGuardedFileSystem(DataDir* dir);

}  // namespace detail
}  // namespace segd::storage
