#pragma once

// InfoLogger: where RocksDB's own diagnostic log goes. RocksDB's default writes DATA_DIR/log/LOG
// through a file writer that aborts the process (an assertion that Debian's librocksdb keeps)
// when it is written again after a failed write, which is what happens to it when the disk
// fills. This logger writes the same file with plain appends whose failures are ignored:
// a line that does not fit is lost, never the process. Lines at WARN and above also go to
// segd's standard error, prefixed "rocksdb:". The file of the previous run is kept as LOG.old.
//
// Thread safety: RocksDB calls it from any thread; each line is one write() on an O_APPEND
// descriptor.

#include <memory>
#include <string>

namespace rocksdb {
class Logger;
}  // namespace rocksdb

namespace segd::storage::detail {

// `dir`: the RocksDB directory (it may not exist yet: created here).
std::shared_ptr<rocksdb::Logger> NewInfoLogger(const std::string& dir);

}  // namespace segd::storage::detail
