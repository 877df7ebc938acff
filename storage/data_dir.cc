#include "storage/data_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "storage/detail/guarded_file_system.h"

namespace segd::storage {
namespace {

constexpr char kLockFile[] = "segd.lock";
constexpr char kStateFile[] = "segd.state";

std::string ReadSmallFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string BootId() {
  return std::string(absl::StripAsciiWhitespace(ReadSmallFile("/proc/sys/kernel/random/boot_id")));
}

}  // namespace

absl::StatusOr<std::unique_ptr<DataDir>> DataDir::Lock(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create data directory '", path, "': ", ec.message()));
  }
  const int dir_fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot open data directory '", path, "': ", std::strerror(errno)));
  }
  const std::string lock_path = (std::filesystem::path(path) / kLockFile).string();
  const int lock_fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd < 0) {
    const int err = errno;
    close(dir_fd);
    return absl::PermissionDeniedError(
        absl::StrCat("cannot open '", lock_path, "': ", std::strerror(err)));
  }
  if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    std::string holder = std::string(absl::StripAsciiWhitespace(ReadSmallFile(lock_path)));
    close(lock_fd);
    close(dir_fd);
    if (err == EWOULDBLOCK) {
      return absl::FailedPreconditionError(
          absl::StrCat("data directory '", path, "' is in use by another segd process",
                       holder.empty() ? "" : absl::StrCat(" (pid ", holder, ")")));
    }
    return absl::PermissionDeniedError(
        absl::StrCat("cannot lock '", lock_path, "': ", std::strerror(err)));
  }
  // The holder's pid, for the message above; advisory only.
  const std::string pid = absl::StrCat(getpid(), "\n");
  if (ftruncate(lock_fd, 0) != 0 || pwrite(lock_fd, pid.data(), pid.size(), 0) < 0) {
    // Not needed for the lock itself.
  }
  std::unique_ptr<DataDir> dir(new DataDir(path, dir_fd, lock_fd));
  struct stat st;
  if (fstat(dir_fd, &st) == 0) {
    dir->dir_dev_ = st.st_dev;
    dir->dir_ino_ = st.st_ino;
  }
  if (fstat(lock_fd, &st) == 0) {
    dir->lock_dev_ = st.st_dev;
    dir->lock_ino_ = st.st_ino;
  }
  dir->boot_id_ = BootId();
  // The previous run's position: "position N\nboot ID\n".
  for (absl::string_view line : absl::StrSplit(ReadSmallFile(dir->StatePath()), '\n')) {
    if (absl::ConsumePrefix(&line, "position ")) {
      if (!absl::SimpleAtoi(line, &dir->recorded_)) dir->recorded_ = 0;
    } else if (absl::ConsumePrefix(&line, "boot ")) {
      dir->recorded_boot_ = std::string(line);
    }
  }
  dir->last_written_ = dir->recorded_;
  return dir;
}

DataDir::DataDir(std::string path, int dir_fd, int lock_fd)
    : path_(std::move(path)), dir_fd_(dir_fd), lock_fd_(lock_fd) {}

DataDir::~DataDir() {
  close(lock_fd_);  // releases the flock
  close(dir_fd_);
}

std::string DataDir::StatePath() const {
  return (std::filesystem::path(path_) / kStateFile).string();
}

absl::Status DataDir::CheckInPlace() {
  auto fail = [&](absl::string_view what) {
    moved_.store(true, std::memory_order_release);
    return absl::FailedPreconditionError(absl::StrCat(
        "the data directory '", path_, "' ", what,
        " while segd was running; segd stopped writing, and touches no file at that path "
        "again (another directory may live there now). Restart segd to serve from what is "
        "at the path now"));
  };
  if (this->moved()) return fail("was moved or deleted");
  struct stat st;
  if (stat(path_.c_str(), &st) != 0) return fail("was moved or deleted");
  if (st.st_dev != dir_dev_ || st.st_ino != dir_ino_) {
    return fail("was moved or deleted, and another directory took its place,");
  }
  const std::string lock_path = (std::filesystem::path(path_) / kLockFile).string();
  if (stat(lock_path.c_str(), &st) != 0 || st.st_dev != lock_dev_ || st.st_ino != lock_ino_) {
    return fail("lost its lock file (segd.lock was deleted or replaced)");
  }
  return absl::OkStatus();
}

absl::Status DataDir::RecordPosition(uint64_t next_seq) {
  if (next_seq == last_written_ || moved()) return absl::OkStatus();
  const std::string text = absl::StrCat("position ", next_seq, "\nboot ", boot_id_, "\n");
  const std::string tmp = StatePath() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    out.close();
    if (!out) return absl::UnavailableError(absl::StrCat("cannot write '", tmp, "'"));
  }
  if (std::rename(tmp.c_str(), StatePath().c_str()) != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot rename '", tmp, "': ", std::strerror(errno)));
  }
  last_written_ = next_seq;
  return absl::OkStatus();
}

absl::Status DataDir::CheckRecovered(uint64_t next_seq, bool strict) const {
  if (next_seq >= recorded_) return absl::OkStatus();
  const bool rebooted = recorded_boot_.empty() || recorded_boot_ != boot_id_;
  if (rebooted && !strict) return absl::OkStatus();
  return absl::DataLossError(absl::StrCat(
      "the operation log in '", path_, "' ends at record ", next_seq - 1,
      ", but segd had logged up to record ", recorded_ - 1, " (segd.state)",
      rebooted ? ", synced" : " and the machine has not restarted since",
      ": files of the log were deleted or replaced while segd ran or was stopped. Starting would "
      "silently drop "
      "acknowledged changes, so segd stops. To repair: stop every segd using this directory, "
      "restore it from a backup; or, to accept the loss and go on with what the log holds, "
      "delete '",
      StatePath(), "' and start again (docs/operations.md)"));
}

std::shared_ptr<rocksdb::FileSystem> DataDir::FileSystem() {
  return detail::NewGuardedFileSystem(this);
}

}  // namespace segd::storage
