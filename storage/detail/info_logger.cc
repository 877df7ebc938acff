#include "storage/detail/info_logger.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <ctime>
#include <filesystem>

#include "rocksdb/env.h"

namespace segd::storage::detail {
namespace {

class InfoLogger final : public rocksdb::Logger {
 public:
  explicit InfoLogger(int fd) : rocksdb::Logger(rocksdb::InfoLogLevel::INFO_LEVEL), fd_(fd) {}
  ~InfoLogger() override {
    if (fd_ >= 0) close(fd_);
  }

  void Logv(const char* format, va_list ap) override {
    Logv(rocksdb::InfoLogLevel::INFO_LEVEL, format, ap);
  }
  void Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) override {
    if (level < GetInfoLogLevel()) return;
    char line[2048];
    timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    tm utc;
    gmtime_r(&now.tv_sec, &utc);
    int n = static_cast<int>(strftime(line, 32, "%Y/%m/%d-%H:%M:%S", &utc));
    n += std::snprintf(line + n, sizeof line - n, ".%06ld ", now.tv_nsec / 1000);
    va_list copy;
    va_copy(copy, ap);
    const int body = std::vsnprintf(line + n, sizeof line - n - 1, format, copy);
    va_end(copy);
    if (body < 0) return;
    n = std::min<int>(n + body, sizeof line - 2);
    if (line[n - 1] != '\n') line[n++] = '\n';
    if (fd_ >= 0) {
      // Ignored on purpose: a full disk loses diagnostic lines, nothing else.
      [[maybe_unused]] ssize_t written = write(fd_, line, n);
    }
    if (level >= rocksdb::InfoLogLevel::WARN_LEVEL) {
      std::fprintf(stderr, "rocksdb: %.*s", n, line);
    }
  }

 private:
  const int fd_;
};

}  // namespace

std::shared_ptr<rocksdb::Logger> NewInfoLogger(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  const std::string path = dir + "/LOG";
  std::filesystem::rename(path, path + ".old", ec);  // the previous run's, if any
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  return std::make_shared<InfoLogger>(fd);
}

}  // namespace segd::storage::detail
