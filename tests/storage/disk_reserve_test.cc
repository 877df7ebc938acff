#include "storage/disk_reserve.h"

#include <sys/statvfs.h>

#include "gtest/gtest.h"
#include "tests/testutil/temp_dir.h"

namespace segd::storage {
namespace {

uint64_t FreeBytes(const std::string& path) {
  struct statvfs st;
  EXPECT_EQ(statvfs(path.c_str(), &st), 0);
  return uint64_t{st.f_bavail} * st.f_frsize;
}

TEST(DiskReserveTest, ZeroReserveAdmitsEverything) {
  testutil::TempDir dir;
  DiskReserve reserve(dir.path(), 0);
  EXPECT_TRUE(reserve.Admit(uint64_t{1} << 50, DiskReserve::Use::kMutation).ok());
  EXPECT_FALSE(reserve.low());
  EXPECT_GT(reserve.total_bytes(), 0u);
}

TEST(DiskReserveTest, RefusesMutationsBelowTheReserveAndExpiriesBelowHalfOfIt) {
  testutil::TempDir dir;
  const uint64_t free_bytes = FreeBytes(dir.path());
  ASSERT_GT(free_bytes, uint64_t{64} << 20) << "the test needs some free space";
  // A reserve of 1.5x what is free: mutations are refused, expiries and snapshots (which may
  // use half of it, 0.75x) are admitted. Other processes' writes move the free space by far
  // less than these margins during the test.
  DiskReserve reserve(dir.path(), free_bytes + free_bytes / 2);
  absl::Status refused = reserve.Admit(100, DiskReserve::Use::kMutation);
  EXPECT_TRUE(absl::IsUnavailable(refused)) << refused;
  EXPECT_NE(refused.message().find("disk almost full"), absl::string_view::npos);
  EXPECT_NE(refused.message().find("--min-free-disk"), absl::string_view::npos);
  EXPECT_TRUE(reserve.low());
  EXPECT_TRUE(reserve.Admit(100, DiskReserve::Use::kExpiry).ok());
  EXPECT_TRUE(reserve.Admit(100, DiskReserve::Use::kSnapshot).ok());
}

}  // namespace
}  // namespace segd::storage
