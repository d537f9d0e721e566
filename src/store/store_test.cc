#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "store/store.h"

namespace drover::store {
namespace {

Record R(std::string key, int64_t seq, std::string doc = "{}") {
  return Record{"job-queue", key, "n-" + key, 0, seq, std::move(doc)};
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("drover-store-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Path() const { return (dir_ / "state.db").string(); }
  std::filesystem::path dir_;
};

TEST_F(StoreTest, WritesSurviveReopen) {
  // Given records written and the store closed, reopening should return them unchanged.
  {
    auto s = OpenSqliteStore(Path());
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    ASSERT_TRUE((*s)->WriteSync({{R("a", 1, R"({"x":1})"), R("b", 2)}, {}}).ok());
    ASSERT_TRUE((*s)->WriteSync({{R("a", 1, R"({"x":2})")}, {"b"}}).ok());
  }
  auto s = OpenSqliteStore(Path());
  ASSERT_TRUE(s.ok());
  auto all = (*s)->LoadAll();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0], R("a", 1, R"({"x":2})"));
}

TEST_F(StoreTest, ConcurrentWritersAreAllAcknowledgedAndDurable) {
  // Given many threads writing at once, every acknowledged write should be stored.
  auto s = OpenSqliteStore(Path());
  ASSERT_TRUE(s.ok());
  Store& st = **s;
  std::atomic<int> acked{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        int n = t * 1000 + i;
        if (st.WriteSync({{R("k" + std::to_string(n), n)}, {}}).ok()) ++acked;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(acked.load(), 400);
  auto all = st.LoadAll();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 400u);
}

TEST_F(StoreTest, NewerSchemaIsRefused) {
  // Given a data dir written by a newer build, opening should fail with a clear message.
  {
    auto s = OpenSqliteStore(Path());
    ASSERT_TRUE(s.ok());
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(Path().c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version=99", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  auto s = OpenSqliteStore(Path());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("newer Drover"), std::string::npos);
}

}  // namespace
}  // namespace drover::store
