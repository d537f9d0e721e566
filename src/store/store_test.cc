#include <algorithm>
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "common/thread.h"
#include "store/store.h"

namespace drover::store {
namespace {

Record R(std::string key, int64_t seq, std::string doc = "{}") {
  return Record{"job-queue", key, "n-" + key, 0, seq, std::move(doc)};
}

Record CreateOnly(Record r) {
  r.create_only = true;
  return r;
}

// `url` (postgres://.../db?opts) naming database `db` instead.
std::string WithDatabase(const std::string& url, const std::string& db) {
  size_t q = url.find('?');
  std::string base = url.substr(0, q), query = q == std::string::npos ? "" : url.substr(q);
  size_t scheme = base.find("://");
  size_t slash = base.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  return base.substr(0, slash) + "/" + db + query;
}

// Runs one statement on the database at `url`; returns an error message or "".
std::string PgExec(const std::string& url, const std::string& sql) {
  PGconn* c = PQconnectdb(url.c_str());
  std::string err;
  if (PQstatus(c) != CONNECTION_OK) {
    err = PQerrorMessage(c);
  } else {
    PGresult* r = PQexec(c, sql.c_str());
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
      err = PQresultErrorMessage(r);
    }
    PQclear(r);
  }
  PQfinish(c);
  return err;
}

// Every test runs against each backend: "sqlite" (a file in a temporary dir)
// and "postgres" (a fresh database on the server named by $DROVER_TEST_PG, a
// URL such as postgresql://postgres@127.0.0.1:55432/postgres; ctest starts one
// with scripts/pg.sh: the store_test_pg test).
class StoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (pg()) {
      const char* base = std::getenv("DROVER_TEST_PG");
      if (base == nullptr || *base == '\0') {
        GTEST_SKIP() << "DROVER_TEST_PG is not set (a PostgreSQL URL): skipping the PostgreSQL "
                        "store tests; `ctest -R store_test_pg` starts a server and runs them";
      }
      base_url_ = base;
      std::random_device rd;
      char name[32];
      std::snprintf(name, sizeof name, "d_%08x%08x", rd(), rd());
      db_ = name;
      ASSERT_EQ(PgExec(base_url_, "CREATE DATABASE " + db_), "");
      return;
    }
    dir_ = std::filesystem::temp_directory_path() /
           ("drover-store-test-" + std::to_string(::getpid()) + "-" +
            std::to_string(std::hash<std::string>{}(
                ::testing::UnitTest::GetInstance()->current_test_info()->name())));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    if (!db_.empty()) {
      EXPECT_EQ(PgExec(base_url_, "DROP DATABASE IF EXISTS " + db_ + " WITH (FORCE)"), "");
    }
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  bool pg() const { return GetParam() == "postgres"; }
  std::string Url() const { return WithDatabase(base_url_, db_); }
  std::string Path() const { return (dir_ / "state.db").string(); }
  Result<std::unique_ptr<Store>> Open() {
    return pg() ? OpenPostgresStore(Url()) : OpenSqliteStore(Path());
  }
  // Writes the schema version straight into the database.
  void SetSchemaVersion(int v) {
    if (pg()) {
      ASSERT_EQ(PgExec(Url(), "UPDATE schema_version SET version = " + std::to_string(v)), "");
      return;
    }
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(Path().c_str(), &db), SQLITE_OK);
    std::string sql = "PRAGMA user_version=" + std::to_string(v);
    ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  std::filesystem::path dir_;
  std::string base_url_, db_;
};

INSTANTIATE_TEST_SUITE_P(Backends, StoreTest, ::testing::Values("sqlite", "postgres"),
                         [](const auto& info) { return info.param; });

TEST_P(StoreTest, WritesSurviveReopen) {
  // Given records written and the store closed, reopening should return them unchanged.
  {
    auto s = Open();
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    ASSERT_TRUE((*s)->WriteSync({{R("a", 1, R"({"x":1})"), R("b", 2)}, {}}).ok());
    ASSERT_TRUE((*s)->WriteSync({{R("a", 1, R"({"x":2})")}, {"b"}}).ok());
  }
  auto s = Open();
  ASSERT_TRUE(s.ok());
  auto all = (*s)->LoadAll();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0], R("a", 1, R"({"x":2})"));
}

TEST_P(StoreTest, ConcurrentWritersAreAllAcknowledgedAndDurable) {
  // Given many threads writing at once, every acknowledged write should be stored.
  auto s = Open();
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

TEST_P(StoreTest, NewerSchemaIsRefused) {
  // Given a store written by a newer build, opening should fail with a clear message.
  {
    auto s = Open();
    ASSERT_TRUE(s.ok()) << s.status().ToString();
  }
  SetSchemaVersion(99);
  auto s = Open();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("newer Drover"), std::string::npos) << s.status().message();
}

TEST_P(StoreTest, ReopeningAMigratedStoreKeepsItsRecords) {
  // Given a store opened twice at once and then again, every open should succeed and see
  // the same records (the schema is created once).
  auto a = Open();
  auto b = Open();
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  ASSERT_TRUE((*a)->WriteSync({{R("a", 1)}, {}}).ok());
  auto all = (*b)->LoadAll();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0], R("a", 1));
}

TEST_P(StoreTest, LoadAllReturnsTheLatestOfEveryRecordOnce) {
  // Given records written out of creation order and one rewritten, LoadAll should return
  // each once, as last written (in no particular order: a million rows are not sorted).
  auto s = Open();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_TRUE((*s)->WriteSync({{R("c", 3), R("a", 1)}, {}}).ok());
  ASSERT_TRUE((*s)->WriteSync({{R("b", 2), R("c", 3, R"({"v":2})")}, {}}).ok());
  auto all = (*s)->LoadAll();
  ASSERT_TRUE(all.ok());
  std::sort(all->begin(), all->end(), [](const Record& x, const Record& y) { return x.seq < y.seq; });
  std::vector<Record> want{R("a", 1), R("b", 2), R("c", 3, R"({"v":2})")};
  EXPECT_EQ(*all, want);
}

TEST_P(StoreTest, ARewriteReplacesEveryColumnWhetherKindAndSeqStayOrChange) {
  // Given a stored key rewritten once with its kind and seq kept (the common update) and
  // once with both changed, each LoadAll should return exactly the last record written.
  auto s = Open();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_TRUE((*s)->WriteSync({{R("a", 1), R("b", 2)}, {}}).ok());
  Record kept{"job-queue", "a", "renamed", 7, 1, R"({"v":2})"};
  ASSERT_TRUE((*s)->WriteSync({{kept}, {}}).ok());
  auto all = (*s)->LoadAll();
  ASSERT_TRUE(all.ok());
  std::sort(all->begin(), all->end(), [](const Record& x, const Record& y) { return x.key < y.key; });
  EXPECT_EQ(*all, (std::vector<Record>{kept, R("b", 2)}));

  Record moved{"job-definition", "a", "other", 8, 5, R"({"v":3})"};
  ASSERT_TRUE((*s)->WriteSync({{moved}, {}}).ok());
  all = (*s)->LoadAll();
  ASSERT_TRUE(all.ok());
  std::sort(all->begin(), all->end(), [](const Record& x, const Record& y) { return x.key < y.key; });
  EXPECT_EQ(*all, (std::vector<Record>{moved, R("b", 2)}));
}

TEST_P(StoreTest, CreateOnlyOfAnExistingKeyFailsItsWholeBatchAlone) {
  // Given a stored key, a batch holding a create_only put of it should fail with
  // AlreadyExists and apply nothing, while the batches around it (possibly in the same
  // group commit) apply; a create_only put of a new or deleted key should succeed.
  auto s = Open();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  Store& st = **s;
  ASSERT_TRUE(st.WriteSync({{R("a", 1), R("gone", 2)}, {}}).ok());
  ASSERT_TRUE(st.WriteSync({{}, {"gone"}}).ok());
  std::promise<Status> p1, p2, p3, p4;
  st.Write({{R("b", 3)}, {}}, [&](Status x) { p1.set_value(x); });
  st.Write({{R("c", 4), CreateOnly(R("a", 1, R"({"new":1})"))}, {"b"}},
           [&](Status x) { p2.set_value(x); });
  st.Write({{CreateOnly(R("d", 5)), CreateOnly(R("gone", 6))}, {}},
           [&](Status x) { p3.set_value(x); });
  st.Write({{CreateOnly(R("d", 7))}, {}}, [&](Status x) { p4.set_value(x); });
  Status s1 = p1.get_future().get(), s2 = p2.get_future().get();
  Status s3 = p3.get_future().get(), s4 = p4.get_future().get();
  EXPECT_TRUE(s1.ok()) << s1.ToString();
  EXPECT_EQ(s2.code(), Code::kAlreadyExists) << s2.ToString();
  EXPECT_TRUE(s3.ok()) << s3.ToString();
  EXPECT_EQ(s4.code(), Code::kAlreadyExists) << s4.ToString();
  auto all = st.LoadAll();
  ASSERT_TRUE(all.ok());
  std::vector<Record> want{R("a", 1), R("b", 3), R("d", 5), R("gone", 6)};
  EXPECT_EQ(*all, want);
  // And the store goes on working.
  ASSERT_TRUE(st.WriteSync({{R("e", 8)}, {}}).ok());
}

TEST_P(StoreTest, PollChangesReportsOtherInstancesWritesNeverOwn) {
  // Given two store instances on one database, each should hear of the other's puts and
  // deletes (latest state, in commit order) and never of its own; SQLite (one instance
  // per file) reports nothing.
  auto a = Open();
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_TRUE((*a)->WriteSync({{R("before", 1)}, {}}).ok());
  auto b = Open();
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  Store& sa = **a;
  Store& sb = **b;
  ASSERT_TRUE(sa.LoadAll().ok());
  ASSERT_TRUE(sb.LoadAll().ok());
  ASSERT_TRUE(sa.WriteSync({{R("x", 2), R("y", 3)}, {}}).ok());
  ASSERT_TRUE(sa.WriteSync({{R("x", 2, R"({"v":2})")}, {}}).ok());
  ASSERT_TRUE(sb.WriteSync({{R("z", 4)}, {}}).ok());
  auto cb = sb.PollChanges();
  auto ca = sa.PollChanges();
  ASSERT_TRUE(cb.ok()) << cb.status().ToString();
  ASSERT_TRUE(ca.ok()) << ca.status().ToString();
  if (!pg()) {
    EXPECT_TRUE(cb->empty());
    EXPECT_TRUE(ca->empty());
    return;
  }
  std::vector<Record> want_b{R("y", 3), R("x", 2, R"({"v":2})")};
  EXPECT_EQ(cb->puts, want_b);
  EXPECT_TRUE(cb->deletes.empty());
  std::vector<Record> want_a{R("z", 4)};
  EXPECT_EQ(ca->puts, want_a);
  EXPECT_TRUE(ca->deletes.empty());
  // Nothing new: nothing reported, also not the own writes.
  ASSERT_TRUE(sb.WriteSync({{R("w", 5)}, {}}).ok());
  auto again = sb.PollChanges();
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->empty());
  // Deletes, by either side.
  ASSERT_TRUE(sa.WriteSync({{}, {"x", "z", "nonexistent"}}).ok());
  cb = sb.PollChanges();
  ASSERT_TRUE(cb.ok());
  EXPECT_TRUE(cb->puts.empty());
  std::vector<std::string> want_deletes{"x", "z"};
  EXPECT_EQ(cb->deletes, want_deletes);
  ca = sa.PollChanges();
  ASSERT_TRUE(ca.ok());
  std::vector<Record> want_w{R("w", 5)};
  EXPECT_EQ(ca->puts, want_w);
  EXPECT_TRUE(ca->deletes.empty());
  // A deleted key put again is a put; LoadAll never shows tombstones.
  ASSERT_TRUE(sb.WriteSync({{R("x", 6)}, {}}).ok());
  ca = sa.PollChanges();
  ASSERT_TRUE(ca.ok());
  std::vector<Record> want_x{R("x", 6)};
  EXPECT_EQ(ca->puts, want_x);
  auto all = sa.LoadAll();
  ASSERT_TRUE(all.ok());
  std::vector<Record> want_all{R("before", 1), R("y", 3), R("w", 5), R("x", 6)};
  EXPECT_EQ(*all, want_all);
}

TEST_P(StoreTest, PollChangesMissesNothingUnderConcurrentWriters) {
  // Given another instance writing from many threads while this one polls, the polls
  // should together report every key exactly as finally stored.
  auto a = Open();
  auto b = Open();
  ASSERT_TRUE(a.ok() && b.ok());
  Store& sa = **a;
  Store& sb = **b;
  ASSERT_TRUE(sb.LoadAll().ok());
  std::map<std::string, Record> seen;
  std::atomic<bool> done{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        int n = t * 1000 + i;
        ASSERT_TRUE(sa.WriteSync({{R("k" + std::to_string(n), n)}, {}}).ok());
      }
    });
  }
  std::thread poller([&] {
    while (!done) {
      auto c = sb.PollChanges();
      ASSERT_TRUE(c.ok()) << c.status().ToString();
      for (auto& r : c->puts) seen[r.key] = r;
    }
  });
  for (auto& th : threads) th.join();
  done = true;
  poller.join();
  auto c = sb.PollChanges();
  ASSERT_TRUE(c.ok());
  for (auto& r : c->puts) seen[r.key] = r;
  EXPECT_EQ(seen.size(), pg() ? 200u : 0u);
}

TEST_P(StoreTest, ExactlyOneInstanceLeadsUntilItCloses) {
  // Given two instances on one database, exactly one should hold the lease, keep it on
  // every call, and the other should take it once the leader is closed. (SQLite: each
  // instance leads.)
  auto a = Open();
  auto b = Open();
  ASSERT_TRUE(a.ok() && b.ok());
  auto la = (*a)->TryLead();
  auto lb = (*b)->TryLead();
  ASSERT_TRUE(la.ok() && lb.ok());
  if (!pg()) {
    EXPECT_TRUE(*la);
    EXPECT_TRUE(*lb);
    return;
  }
  EXPECT_TRUE(*la);
  EXPECT_FALSE(*lb);
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(*(*a)->TryLead());
    EXPECT_FALSE(*(*b)->TryLead());
  }
  a->reset();  // the leader goes: its session ends
  bool took = false;
  for (int i = 0; i < 500 && !took; ++i) {  // the server ends the session asynchronously
    auto l = (*b)->TryLead();
    ASSERT_TRUE(l.ok()) << l.status().ToString();
    took = *l;
    if (!took) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(took);
}

TEST_P(StoreTest, ReconnectsAfterTheDatabaseDroppedItsConnections) {
  // Given every connection of a store killed by the database (as in a restart), its next
  // writes, loads and polls should succeed on new connections, and the lease should be
  // reported lost once and then taken again.
  if (!pg()) GTEST_SKIP() << "SQLite has no connections to lose";
  auto s = Open();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  Store& st = **s;
  ASSERT_TRUE(st.WriteSync({{R("a", 1)}, {}}).ok());
  ASSERT_TRUE(st.LoadAll().ok());
  ASSERT_TRUE(*st.TryLead());
  ASSERT_EQ(PgExec(Url(),
                   "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                   "WHERE datname = current_database() AND pid <> pg_backend_pid()"),
            "");
  Status w = st.WriteSync({{R("b", 2)}, {}});
  EXPECT_TRUE(w.ok()) << w.ToString();
  auto all = st.LoadAll();
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_EQ(all->size(), 2u);
  EXPECT_TRUE(st.PollChanges().ok());
  auto lost = st.TryLead();
  ASSERT_TRUE(lost.ok());
  EXPECT_FALSE(*lost);
  bool again = false;
  for (int i = 0; i < 500 && !again; ++i) {  // the old session ends asynchronously
    auto l = st.TryLead();
    ASSERT_TRUE(l.ok()) << l.status().ToString();
    again = *l;
    if (!again) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(again);
}

TEST_P(StoreTest, ARefusedCommitFailsItsBatchesAndTheStoreGoesOn) {
  // Given a batch the database refuses (text that is not UTF-8), its write should fail with
  // a Server error and store nothing of it, and the next writes should succeed.
  if (!pg()) GTEST_SKIP() << "SQLite stores any bytes";
  auto s = Open();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  Store& st = **s;
  Status bad = st.WriteSync({{R("ok-looking", 1), R("bad", 2, "{\"x\":\"\xff\xfe\"}")}, {}});
  EXPECT_EQ(bad.code(), Code::kServer) << bad.ToString();
  Status good = st.WriteSync({{R("good", 3)}, {}});
  EXPECT_TRUE(good.ok()) << good.ToString();
  auto all = st.LoadAll();
  ASSERT_TRUE(all.ok());
  std::vector<Record> want{R("good", 3)};
  EXPECT_EQ(*all, want);
}

TEST_P(StoreTest, AnUnreachableDatabaseIsAnErrorNotACrash) {
  // Given a URL where no database listens, opening should fail with a Server status.
  if (!pg()) GTEST_SKIP() << "PostgreSQL only";
  auto s = OpenPostgresStore("postgresql://postgres@127.0.0.1:1/nothing?connect_timeout=2");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kServer);
  EXPECT_NE(s.status().message().find("connect to PostgreSQL"), std::string::npos)
      << s.status().message();
}

TEST(SqliteStoreTest, CheckpointsRunOnTheirOwnThreadAndTheWalStartsOver) {
  // Given a small checkpoint threshold and many commits, the WAL should be copied
  // into the database by the store's checkpoint thread (not inside the commits),
  // the WAL file should stay small (it starts over once a checkpoint caught up;
  // without checkpoints it would hold every page written), and nothing is lost.
  auto dir = std::filesystem::temp_directory_path() /
             ("drover-store-ckpt-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "state.db").string();
  std::mutex mu;
  std::set<std::string> threads;
  int copied = 0;
  SqliteOptions opts;
  opts.checkpoint_frames = 32;
  opts.on_checkpoint = [&](int n) {
    std::lock_guard<std::mutex> l(mu);
    threads.insert(ThreadName());
    copied += n;
  };
  const int kWrites = 1000;
  const std::string doc = "\"" + std::string(3000, 'x') + "\"";  // most of a 4 KiB page
  {
    auto s = OpenSqliteStore(path, opts);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    for (int i = 0; i < kWrites; ++i) {
      ASSERT_TRUE((*s)->WriteSync({{R("k" + std::to_string(i), i + 1, doc)}, {}}).ok());
    }
    for (int i = 0; i < 500; ++i) {
      {
        std::lock_guard<std::mutex> l(mu);
        if (copied > 0) break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    {
      std::lock_guard<std::mutex> l(mu);
      EXPECT_GT(copied, 0);
      EXPECT_EQ(threads, std::set<std::string>{"drover-ckpt"});
    }
    // About 4 MiB went through the WAL; it never held more than a few of the
    // threshold's 32 frames at a time (8 x 32 at the most, when a commit has to
    // checkpoint itself).
    EXPECT_LT(std::filesystem::file_size(path + "-wal"), 16u * 32 * 4096);
  }
  auto s = OpenSqliteStore(path);
  ASSERT_TRUE(s.ok());
  auto all = (*s)->LoadAll();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), static_cast<size_t>(kWrites));
  s->reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace drover::store
