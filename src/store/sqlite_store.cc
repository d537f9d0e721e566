#include <sqlite3.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

#include "common/log.h"
#include "common/thread.h"
#include "store/group_commit.h"
#include "store/store.h"

namespace drover::store {
namespace {

// Schema migrations, applied in order; PRAGMA user_version records how many
// have run. Append only: never edit a migration that has shipped.
const char* const kMigrations[] = {
    // 1: resources of every kind, one row each.
    R"sql(
    CREATE TABLE resources(
      key TEXT PRIMARY KEY NOT NULL,
      kind TEXT NOT NULL,
      name TEXT NOT NULL,
      revision INTEGER NOT NULL DEFAULT 0,
      seq INTEGER NOT NULL,
      doc TEXT NOT NULL);
    CREATE INDEX resources_by_kind ON resources(kind, seq);
    )sql",
};

Status SqlError(sqlite3* db, const std::string& what) {
  return Status::Server(what + ": " + (db ? sqlite3_errmsg(db) : "out of memory"));
}

class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) { sqlite3_prepare_v2(db, sql, -1, &s_, nullptr); }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  sqlite3_stmt* get() const { return s_; }
  explicit operator bool() const { return s_ != nullptr; }

 private:
  sqlite3_stmt* s_ = nullptr;
};

// Checkpoints on a thread and a connection of their own. SQLite's automatic
// checkpoint runs inside the COMMIT that crossed its threshold, on the writer
// thread: that commit, and every write queued behind it, waited while 32 MiB of
// pages were copied into the database file and it was fsynced (SubmitJob at 128
// connections: p99 23 ms instead of 11). Here a commit only counts the WAL's
// frames (the WAL hook); past the threshold this thread copies them (PASSIVE
// checkpoints: what was committed when each began) while the writer goes on.
//
// The WAL starts over from its beginning (overwriting a WAL costs less to fsync
// than growing one) only at a write transaction that finds every frame copied,
// which a checkpoint that runs beside back-to-back commits never leaves behind:
// so once this thread has come within a few frames of the end, the next commit
// copies those few itself, and the following write starts the WAL over.
class Checkpointer {
 public:
  enum class Action { kNone, kFinish, kForce };

  Checkpointer(sqlite3* db, int frames, std::function<void(int)> on_checkpoint)
      : db_(db),
        frames_(frames),
        finish_frames_(std::clamp(frames / 4, 1, 256)),
        on_checkpoint_(std::move(on_checkpoint)),
        thread_([this] { Loop(); }) {}
  ~Checkpointer() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
    sqlite3_close(db_);
  }

  // From the WAL hook (the writer thread, after a commit): the WAL has
  // `wal_frames`. Says whether that commit should checkpoint itself: kFinish
  // when this thread copied all but a few frames, kForce when it is far behind
  // (8 times the threshold: a bound on the WAL's size).
  Action Committed(int wal_frames) {
    std::lock_guard<std::mutex> l(mu_);
    if (wal_frames < last_frames_) ++generation_;  // the WAL started over
    last_frames_ = wal_frames;
    if (wal_frames < frames_) return Action::kNone;
    if (caught_generation_ == generation_ && caught_up_to_ >= 0 &&
        caught_up_to_ <= wal_frames && wal_frames - caught_up_to_ <= finish_frames_) {
      caught_up_to_ = -1;
      return Action::kFinish;
    }
    if (!wanted_) {
      wanted_ = true;
      cv_.notify_one();
    }
    return wal_frames >= 8 * frames_ ? Action::kForce : Action::kNone;
  }

  // A checkpoint on the writer's connection `db` (what Committed() asked for),
  // after this thread's checkpoint in progress, if any: it copies every frame
  // (no commit runs meanwhile), so the next write starts the WAL over.
  void CheckpointHere(sqlite3* db, const char* schema) {
    std::lock_guard<std::mutex> l(run_mu_);
    sqlite3_wal_checkpoint_v2(db, schema, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
  }

 private:
  void Loop() {
    SetThreadName("drover-ckpt");
    std::unique_lock<std::mutex> l(mu_);
    for (;;) {
      cv_.wait(l, [&] { return stop_ || wanted_; });
      if (stop_) return;
      wanted_ = false;
      const uint64_t generation = generation_;
      l.unlock();
      int log = 0, copied = 0, rc;
      {
        std::lock_guard<std::mutex> run(run_mu_);
        rc = sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, &log, &copied);
      }
      if (rc == SQLITE_OK) {
        if (on_checkpoint_) on_checkpoint_(copied);
      } else {
        LOG_WARN("WAL checkpoint failed: {}", sqlite3_errmsg(db_));
      }
      l.lock();
      if (rc == SQLITE_OK && copied >= log) {  // (of a WAL that may have started over since)
        caught_generation_ = generation;
        caught_up_to_ = log;
      }
    }
  }

  sqlite3* db_;
  const int frames_, finish_frames_;
  const std::function<void(int)> on_checkpoint_;
  std::mutex run_mu_;  // held while a checkpoint runs (on either connection)
  std::mutex mu_;
  std::condition_variable cv_;
  bool wanted_ = false, stop_ = false;
  // The WAL's frames at the last commit, and how often it started over (seen
  // as fewer frames than the commit before): a checkpoint's "copied all up to
  // frame N" counts only for the WAL it ran on.
  int last_frames_ = 0;
  uint64_t generation_ = 0;
  uint64_t caught_generation_ = 0;
  int caught_up_to_ = -1;  // the last checkpoint copied every frame up to this one
  std::thread thread_;  // last: it uses the members above
};

class SqliteStore final : public Store {
 public:
  // `ckpt`: a second connection to the same file, for the checkpoint thread (null:
  // SQLite checkpoints inside commits, as for ":memory:").
  SqliteStore(sqlite3* db, sqlite3* ckpt, const SqliteOptions& opts)
      : db_(db),
        checkpointer_(ckpt ? std::make_unique<Checkpointer>(ckpt, std::max(1, opts.checkpoint_frames),
                                                            opts.on_checkpoint)
                           : nullptr),
        writer_(std::make_unique<GroupCommitWriter>(
            [this](const GroupCommitWriter::Group& g, std::vector<Status>& each) {
              return Commit(g, each);
            })) {
    if (checkpointer_) sqlite3_wal_hook(db_, &SqliteStore::WalHook, this);
  }

  ~SqliteStore() override {
    writer_.reset();  // commits what is queued, then stops (before the database goes)
    sqlite3_wal_hook(db_, nullptr, nullptr);
    checkpointer_.reset();
    put_.reset();
    replace_.reset();
    del_.reset();
    exists_.reset();
    sqlite3_close(db_);  // (the last connection: checkpoints the rest and removes the WAL)
  }

  Status Migrate() {
    std::lock_guard<std::mutex> l(db_mu_);
    int version = 0;
    {
      Stmt st(db_, "PRAGMA user_version");
      if (!st || sqlite3_step(st.get()) != SQLITE_ROW) return SqlError(db_, "read schema version");
      version = sqlite3_column_int(st.get(), 0);
    }
    const int latest = static_cast<int>(std::size(kMigrations));
    if (version > latest) {
      return Status::Server("the data directory was written by a newer Drover (schema " +
                            std::to_string(version) + ", this build knows " +
                            std::to_string(latest) + ")");
    }
    for (int i = version; i < latest; ++i) {
      std::string sql = std::string("BEGIN IMMEDIATE;") + kMigrations[i] +
                        "PRAGMA user_version=" + std::to_string(i + 1) + ";COMMIT;";
      char* err = nullptr;
      if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
        std::string msg = err ? err : "unknown";
        sqlite3_free(err);
        sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        return Status::Server("schema migration " + std::to_string(i + 1) + " failed: " + msg);
      }
    }
    return Status::Ok();
  }

  Result<std::vector<Record>> LoadAll() override {
    std::vector<Record> out;
    DROVER_RETURN_IF_ERROR(Scan(4096, [&](std::vector<Record>&& chunk) {
      for (auto& r : chunk) out.push_back(std::move(r));
    }));
    return out;
  }

  Status Scan(size_t chunk, const std::function<void(std::vector<Record>&&)>& each) override {
    std::lock_guard<std::mutex> l(db_mu_);
    Stmt st(db_, "SELECT kind, key, name, revision, seq, doc FROM resources");
    if (!st) return SqlError(db_, "prepare load");
    std::vector<Record> out;
    int rc;
    while ((rc = sqlite3_step(st.get())) == SQLITE_ROW) {
      auto text = [&](int c) {
        const unsigned char* p = sqlite3_column_text(st.get(), c);
        return std::string(p ? reinterpret_cast<const char*>(p) : "",
                           sqlite3_column_bytes(st.get(), c));
      };
      out.push_back(Record{text(0), text(1), text(2), sqlite3_column_int64(st.get(), 3),
                           sqlite3_column_int64(st.get(), 4), text(5)});
      if (out.size() >= chunk) {
        each(std::move(out));
        out = std::vector<Record>();
      }
    }
    if (rc != SQLITE_DONE) return SqlError(db_, "load");
    if (!out.empty()) each(std::move(out));
    return Status::Ok();
  }

  size_t Pending() const override { return writer_->Pending(); }

  void Write(WriteBatch batch, std::function<void(Status)> done) override {
    writer_->Write(std::move(batch), std::move(done));
  }

 private:

  Status Commit(const GroupCommitWriter::Group& group, std::vector<Status>& each) {
    std::lock_guard<std::mutex> l(db_mu_);
    if (sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK) {
      return SqlError(db_, "begin");
    }
    Status s = Apply(group, each);
    for (auto* st : {put_.get(), replace_.get(), del_.get(), exists_.get()}) {
      if (st) sqlite3_reset(st->get());  // no statement left running across COMMIT
    }
    if (s.ok() && sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
      s = SqlError(db_, "commit");
    }
    if (!s.ok()) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    return s;
  }

  Status Apply(const GroupCommitWriter::Group& group, std::vector<Status>& each) {
    if (!put_) {  // prepared once, on the first write (after the migrations)
      // A new key is inserted; a key that keeps its kind and seq (every update of
      // a resource) is changed in place: same rowid, no index entry moves. (INSERT
      // OR REPLACE deletes the row and inserts it anew, dirtying a leaf of every
      // index and the table's right edge: twice the WAL pages per job in
      // dispatch.) Only a key whose kind or seq changed goes through `replace_`.
      put_ = std::make_unique<Stmt>(
          db_, "INSERT INTO resources(kind, key, name, revision, seq, doc) VALUES(?1,?2,?3,?4,?5,?6) "
               "ON CONFLICT(key) DO UPDATE SET name = excluded.name, "
               "revision = excluded.revision, doc = excluded.doc "
               "WHERE kind = excluded.kind AND seq = excluded.seq");
      replace_ = std::make_unique<Stmt>(
          db_, "INSERT OR REPLACE INTO resources(kind, key, name, revision, seq, doc) "
               "VALUES(?1,?2,?3,?4,?5,?6)");
      del_ = std::make_unique<Stmt>(db_, "DELETE FROM resources WHERE key = ?");
      exists_ = std::make_unique<Stmt>(db_, "SELECT 1 FROM resources WHERE key = ?");
      if (!*put_ || !*replace_ || !*del_ || !*exists_) {
        Status s = SqlError(db_, "prepare write");
        put_.reset();
        return s;
      }
    }
    Stmt& put = *put_;
    Stmt& replace = *replace_;
    Stmt& del = *del_;
    Stmt& exists = *exists_;
    auto exec = [&](const char* sql) {
      return sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) == SQLITE_OK
                 ? Status::Ok()
                 : SqlError(db_, sql);
    };
    for (size_t i = 0; i < group.size(); ++i) {
      const WriteBatch& b = group[i].batch;
      const bool guarded = std::any_of(b.puts.begin(), b.puts.end(),
                                       [](const Record& r) { return r.create_only; });
      if (guarded) DROVER_RETURN_IF_ERROR(exec("SAVEPOINT batch"));
      for (const Record& r : b.puts) {
        if (r.create_only) {
          sqlite3_reset(exists.get());
          sqlite3_bind_text(exists.get(), 1, r.key.data(), r.key.size(), SQLITE_STATIC);
          int rc = sqlite3_step(exists.get());
          sqlite3_reset(exists.get());  // no read left open across ROLLBACK TO
          if (rc == SQLITE_ROW) {
            each[i] = Status::AlreadyExists(r.key + " already exists");
            break;
          }
          if (rc != SQLITE_DONE) return SqlError(db_, "look up " + r.key);
        }
        if (!Bind(put.get(), r) || sqlite3_step(put.get()) != SQLITE_DONE) {
          return SqlError(db_, "put " + r.key);
        }
        if (sqlite3_changes(db_) == 0 &&
            (!Bind(replace.get(), r) || sqlite3_step(replace.get()) != SQLITE_DONE)) {
          return SqlError(db_, "replace " + r.key);
        }
      }
      if (!each[i].ok()) {
        DROVER_RETURN_IF_ERROR(exec("ROLLBACK TO batch"));
        DROVER_RETURN_IF_ERROR(exec("RELEASE batch"));
        continue;
      }
      for (const std::string& k : b.deletes) {
        sqlite3_reset(del.get());
        sqlite3_bind_text(del.get(), 1, k.data(), k.size(), SQLITE_STATIC);
        if (sqlite3_step(del.get()) != SQLITE_DONE) return SqlError(db_, "delete " + k);
      }
      if (guarded) DROVER_RETURN_IF_ERROR(exec("RELEASE batch"));
    }
    return Status::Ok();
  }

  // Resets `st` and binds the six columns of `r` (?1 kind .. ?6 doc).
  static bool Bind(sqlite3_stmt* st, const Record& r) {
    sqlite3_reset(st);
    return sqlite3_bind_text(st, 1, r.kind.data(), r.kind.size(), SQLITE_STATIC) == SQLITE_OK &&
           sqlite3_bind_text(st, 2, r.key.data(), r.key.size(), SQLITE_STATIC) == SQLITE_OK &&
           sqlite3_bind_text(st, 3, r.name.data(), r.name.size(), SQLITE_STATIC) == SQLITE_OK &&
           sqlite3_bind_int64(st, 4, r.revision) == SQLITE_OK &&
           sqlite3_bind_int64(st, 5, r.seq) == SQLITE_OK &&
           sqlite3_bind_text(st, 6, r.doc.data(), r.doc.size(), SQLITE_STATIC) == SQLITE_OK;
  }

  static int WalHook(void* self, sqlite3* db, const char* schema, int frames) {
    auto* store = static_cast<SqliteStore*>(self);
    if (store->checkpointer_->Committed(frames) != Checkpointer::Action::kNone) {
      store->checkpointer_->CheckpointHere(db, schema);
    }
    return SQLITE_OK;
  }

  sqlite3* db_;
  std::unique_ptr<Checkpointer> checkpointer_;
  std::mutex db_mu_;  // guards db_ (the writer and LoadAll)
  std::unique_ptr<Stmt> put_, replace_, del_, exists_;  // the writer's statements (under db_mu_)

  std::unique_ptr<GroupCommitWriter> writer_;  // last: its thread uses the members above
};

}  // namespace

Status Store::Scan(size_t chunk, const std::function<void(std::vector<Record>&&)>& each) {
  DROVER_ASSIGN_OR_RETURN(std::vector<Record> all, LoadAll());
  for (size_t i = 0; i < all.size(); i += chunk) {
    std::vector<Record> part(std::make_move_iterator(all.begin() + i),
                             std::make_move_iterator(all.begin() + std::min(all.size(), i + chunk)));
    each(std::move(part));
  }
  return Status::Ok();
}

Status Store::WriteSync(WriteBatch batch) {
  std::promise<Status> p;
  auto f = p.get_future();
  Write(std::move(batch), [&p](Status s) { p.set_value(std::move(s)); });
  return f.get();
}

Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path, const SqliteOptions& opts) {
  sqlite3* db = nullptr;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(path.c_str(), &db, flags, nullptr) != SQLITE_OK) {
    Status s = SqlError(db, "open " + path);
    sqlite3_close(db);
    return s;
  }
  sqlite3_busy_timeout(db, 5000);
  // Fewer, larger WAL checkpoints (opts.checkpoint_frames, on the Checkpointer's
  // thread): hot pages (the indexes' right edges) are copied back into the
  // database once per checkpoint, not once per thousand pages written. A page
  // cache of 8 MiB, not more: SQLite ends a write
  // transaction with a walk over every cached page whenever a b-tree split in
  // it swapped two pages' numbers (through a number past the end of the file,
  // which most splits of updated job rows do), so that walk grows with the
  // cache: at 64 MiB it was 9 % of the server's CPU in dispatch, at 8 MiB 3 %,
  // while SubmitJob with 300,000 jobs stored costs the same (the writes go to
  // the b-trees' right edges and a few hot leaves; the server never reads
  // through SQLite but at start).
  for (const char* pragma : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL",
                             "PRAGMA foreign_keys=ON", "PRAGMA cache_size=-8192"}) {
    if (sqlite3_exec(db, pragma, nullptr, nullptr, nullptr) != SQLITE_OK) {
      Status s = SqlError(db, pragma);
      sqlite3_close(db);
      return s;
    }
  }
  std::string mode;
  {
    Stmt st(db, "PRAGMA journal_mode");
    if (st && sqlite3_step(st.get()) == SQLITE_ROW) {
      mode = reinterpret_cast<const char*>(sqlite3_column_text(st.get(), 0));
    }
  }
  sqlite3* ckpt = nullptr;
  if (mode == "wal") {  // (":memory:" has no WAL: SQLite's own checkpoints, none needed)
    if (sqlite3_open_v2(path.c_str(), &ckpt, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                        nullptr) != SQLITE_OK) {
      Status s = SqlError(ckpt, "open " + path + " for checkpoints");
      sqlite3_close(ckpt);
      sqlite3_close(db);
      return s;
    }
    sqlite3_busy_timeout(ckpt, 5000);
    // (a checkpoint syncs the WAL before it copies and the database after, as
    // the connection's synchronous setting says)
    sqlite3_exec(ckpt, "PRAGMA synchronous=FULL", nullptr, nullptr, nullptr);
    sqlite3_wal_autocheckpoint(db, 0);  // (the WAL hook below replaces it)
  }
  auto store = std::make_unique<SqliteStore>(db, ckpt, opts);
  DROVER_RETURN_IF_ERROR(store->Migrate());
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace drover::store
