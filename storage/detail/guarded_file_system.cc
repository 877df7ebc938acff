#include "storage/detail/guarded_file_system.h"

#include <string>

#include "rocksdb/file_system.h"
#include "storage/data_dir.h"

namespace segd::storage::detail {
namespace {

class GuardedFileSystem final : public rocksdb::FileSystemWrapper {
 public:
  explicit GuardedFileSystem(DataDir* dir)
      : rocksdb::FileSystemWrapper(rocksdb::FileSystem::Default()), dir_(dir) {}

  const char* Name() const override { return "SegdGuardedFileSystem"; }

  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r,
                                    rocksdb::IODebugContext* d) override {
    if (auto s = Check(); !s.ok()) return s;
    return target()->NewWritableFile(f, o, r, d);
  }
  rocksdb::IOStatus ReopenWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                       std::unique_ptr<rocksdb::FSWritableFile>* r,
                                       rocksdb::IODebugContext* d) override {
    if (auto s = Check(); !s.ok()) return s;
    return target()->ReopenWritableFile(f, o, r, d);
  }
  rocksdb::IOStatus ReuseWritableFile(const std::string& f, const std::string& old,
                                      const rocksdb::FileOptions& o,
                                      std::unique_ptr<rocksdb::FSWritableFile>* r,
                                      rocksdb::IODebugContext* d) override {
    if (auto s = Check(); !s.ok()) return s;
    return target()->ReuseWritableFile(f, old, o, r, d);
  }
  rocksdb::IOStatus NewRandomRWFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSRandomRWFile>* r,
                                    rocksdb::IODebugContext* d) override {
    if (auto s = Check(); !s.ok()) return s;
    return target()->NewRandomRWFile(f, o, r, d);
  }
  rocksdb::IOStatus DeleteFile(const std::string& f, const rocksdb::IOOptions& o,
                               rocksdb::IODebugContext* d) override {
    if (auto s = Check(); !s.ok()) return s;
    return target()->DeleteFile(f, o, d);
  }
  rocksdb::IOStatus Truncate(const std::string& f, size_t size, const rocksdb::IOOptions& o,
                             rocksdb::IODebugContext* d) override {
    if (auto s = Check(); !s.ok()) return s;
    return target()->Truncate(f, size, o, d);
  }
  rocksdb::IOStatus RenameFile(const std::string& from, const std::string& to,
                               const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override {
    if (auto s = Check(); !s.ok()) return s;
    return target()->RenameFile(from, to, o, d);
  }
  rocksdb::IOStatus LinkFile(const std::string& from, const std::string& to,
                             const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override {
    if (auto s = Check(); !s.ok()) return s;
    return target()->LinkFile(from, to, o, d);
  }
  rocksdb::IOStatus CreateDir(const std::string& f, const rocksdb::IOOptions& o,
                              rocksdb::IODebugContext* d) override {
    if (auto s = Check(); !s.ok()) return s;
    return target()->CreateDir(f, o, d);
  }
  rocksdb::IOStatus CreateDirIfMissing(const std::string& f, const rocksdb::IOOptions& o,
                                       rocksdb::IODebugContext* d) override {
    if (auto s = Check(); !s.ok()) return s;
    return target()->CreateDirIfMissing(f, o, d);
  }
  rocksdb::IOStatus DeleteDir(const std::string& f, const rocksdb::IOOptions& o,
                              rocksdb::IODebugContext* d) override {
    if (auto s = Check(); !s.ok()) return s;
    return target()->DeleteDir(f, o, d);
  }

 private:
  rocksdb::IOStatus Check() {
    absl::Status s = dir_->CheckInPlace();
    if (s.ok()) return rocksdb::IOStatus::OK();
    return rocksdb::IOStatus::IOError(std::string(s.message()));
  }

  DataDir* dir_;
};

}  // namespace

std::shared_ptr<rocksdb::FileSystem> NewGuardedFileSystem(DataDir* dir) {
  return std::make_shared<GuardedFileSystem>(dir);
}

}  // namespace segd::storage::detail
