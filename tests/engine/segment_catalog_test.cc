#include "engine/segment_catalog.h"

#include "engine/errors.h"
#include "gtest/gtest.h"

namespace segd::engine {
namespace {

TEST(SegmentCatalogTest, NameRules) {
  for (const char* ok : {"a", "Z9", "sport", "AVITO_VOICE_MESSAGES", "a.b:c-d_e", "0lead"}) {
    EXPECT_TRUE(SegmentCatalog::ValidateName(ok).ok()) << ok;
  }
  EXPECT_TRUE(SegmentCatalog::ValidateName(std::string(128, 'a')).ok());
  for (std::string bad : {std::string(), std::string(129, 'a'), std::string("_lead"),
                          std::string("-x"), std::string("has space"), std::string("sl/ash"),
                          std::string("quo\"te"), std::string("\xc3\xa9")}) {
    absl::Status s = SegmentCatalog::ValidateName(bad);
    EXPECT_EQ(ErrorCodeOf(s), "bad_request") << bad;
  }
}

TEST(SegmentCatalogTest, UpsertKeepsIdsAndNames) {
  SegmentCatalog catalog;
  SegmentMeta a{.id = 0, .name = "a"};
  ASSERT_TRUE(catalog.Upsert(a).ok());
  EXPECT_FALSE(catalog.Upsert(SegmentMeta{.id = 2, .name = "c"}).ok());  // skips id 1
  EXPECT_FALSE(catalog.Upsert(SegmentMeta{.id = 1, .name = "a"}).ok());  // name taken
  EXPECT_FALSE(catalog.Upsert(SegmentMeta{.id = 0, .name = "z"}).ok());  // renaming
  a.deleted_at = 5;
  ASSERT_TRUE(catalog.Upsert(a).ok());
  EXPECT_EQ(catalog.Find("a"), 0u);
  EXPECT_FALSE(catalog.FindActive("a").has_value());
  EXPECT_FALSE(catalog.IsActive(0));
  catalog.AddToCount(0, 5);
  catalog.AddToCount(0, -2);
  EXPECT_EQ(catalog.Count(0), 3u);
}

}  // namespace
}  // namespace segd::engine
