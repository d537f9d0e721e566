#include <libpq-fe.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <functional>
#include <mutex>
#include <random>
#include <thread>
#include <utility>

#include "common/log.h"
#include "store/group_commit.h"
#include "store/store.h"

namespace drover::store {
namespace {

// Advisory lock keys ("drover" and a number), per database.
constexpr int64_t kMigrateLock = 0x64726f7665720001;  // schema migrations, one opener at a time
constexpr int64_t kWriteLock = 0x64726f7665720002;    // every write transaction: commit order
constexpr int64_t kLeaseLock = 0x64726f7665720003;    // the scheduler lease (a session lock)

// Schema migrations, applied in order; schema_version records how many have
// run. Append only: never edit a migration that has shipped.
const char* const kMigrations[] = {
    // 1: resources of every kind, one row each. `version` comes from a
    // sequence in commit order (writes hold kWriteLock), `writer` names the
    // store instance that wrote the row, and a deleted row stays as a
    // tombstone so that other instances hear of the delete (PollChanges).
    R"sql(
    CREATE SEQUENCE resource_versions;
    CREATE TABLE resources(
      key text PRIMARY KEY,
      kind text NOT NULL,
      name text NOT NULL,
      revision bigint NOT NULL DEFAULT 0,
      seq bigint NOT NULL,
      doc text NOT NULL,
      version bigint NOT NULL,
      writer text NOT NULL,
      deleted boolean NOT NULL DEFAULT false);
    CREATE INDEX resources_by_kind ON resources(kind, seq);
    CREATE INDEX resources_by_version ON resources(version);
    )sql",
};

// Upserts. kCreateSql only replaces a tombstone, so it affects no row when a
// live record holds the key.
const char* const kPutSql =
    "INSERT INTO resources(key, kind, name, revision, seq, doc, version, writer, deleted) "
    "VALUES($1, $2, $3, $4, $5, $6, nextval('resource_versions'), $7, false) "
    "ON CONFLICT (key) DO UPDATE SET kind = excluded.kind, name = excluded.name, "
    "revision = excluded.revision, seq = excluded.seq, doc = excluded.doc, "
    "version = excluded.version, writer = excluded.writer, deleted = false";
const char* const kCreateSql =
    "INSERT INTO resources(key, kind, name, revision, seq, doc, version, writer, deleted) "
    "VALUES($1, $2, $3, $4, $5, $6, nextval('resource_versions'), $7, false) "
    "ON CONFLICT (key) DO UPDATE SET kind = excluded.kind, name = excluded.name, "
    "revision = excluded.revision, seq = excluded.seq, doc = excluded.doc, "
    "version = excluded.version, writer = excluded.writer, deleted = false "
    "WHERE resources.deleted";
const char* const kDeleteSql =
    "UPDATE resources SET deleted = true, doc = '', version = nextval('resource_versions'), "
    "writer = $2 WHERE key = $1 AND NOT deleted";

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// A PGresult, cleared when it goes.
class PgResult {
 public:
  explicit PgResult(PGresult* r = nullptr) : r_(r) {}
  ~PgResult() { PQclear(r_); }
  PgResult(PgResult&& o) noexcept : r_(std::exchange(o.r_, nullptr)) {}
  PgResult& operator=(PgResult&& o) noexcept {
    std::swap(r_, o.r_);
    return *this;
  }
  int rows() const { return PQntuples(r_); }
  std::string text(int row, int col) const {
    return std::string(PQgetvalue(r_, row, col), PQgetlength(r_, row, col));
  }
  int64_t int64(int row, int col) const {
    return std::strtoll(PQgetvalue(r_, row, col), nullptr, 10);
  }
  bool boolean(int row, int col) const { return PQgetvalue(r_, row, col)[0] == 't'; }
  int64_t affected() const { return std::strtoll(PQcmdTuples(r_), nullptr, 10); }
  PGresult* get() const { return r_; }

 private:
  PGresult* r_;
};

// One libpq connection that reconnects on demand. Not thread-safe: each owner
// guards its own.
class Conn {
 public:
  // `on_connect` runs after every (re)connection (to prepare statements).
  Conn(std::string conninfo, std::string role, std::function<Status(Conn&)> on_connect = {})
      : conninfo_(std::move(conninfo)), role_(std::move(role)), on_connect_(std::move(on_connect)) {}
  ~Conn() { Close(); }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  bool connected() const { return c_ != nullptr && PQstatus(c_) == CONNECTION_OK; }

  void Close() {
    if (c_) PQfinish(c_);
    c_ = nullptr;
  }

  // Connects unless connected.
  Status Ensure() {
    if (connected()) return Status::Ok();
    Close();
    // Our defaults first: whatever the caller's conninfo says (expanded in
    // place of "dbname") overrides them.
    const char* keys[] = {"connect_timeout", "keepalives", "keepalives_idle",
                          "keepalives_interval", "keepalives_count", "application_name",
                          "dbname", nullptr};
    const char* values[] = {"10", "1", "10", "5", "3", "drover", conninfo_.c_str(), nullptr};
    c_ = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
    if (c_ == nullptr || PQstatus(c_) != CONNECTION_OK) {
      Status s = Status::Server("connect to PostgreSQL (" + role_ + "): " +
                                (c_ ? Trim(PQerrorMessage(c_)) : "out of memory"));
      Close();
      return s;
    }
    PQsetNoticeProcessor(
        c_, [](void*, const char* msg) { LOG_DEBUG("postgres: {}", Trim(msg)); }, nullptr);
    if (on_connect_) {
      Status s = on_connect_(*this);
      if (!s.ok()) {
        Close();
        return s;
      }
    }
    return Status::Ok();
  }

  // Runs `sql` (several statements when there are no params).
  Result<PgResult> Exec(const std::string& what, const char* sql,
                        const std::vector<const char*>& params = {}) {
    if (!connected()) return Status::Server(what + ": not connected to PostgreSQL");
    PGresult* r = params.empty()
                      ? PQexec(c_, sql)
                      : PQexecParams(c_, sql, static_cast<int>(params.size()), nullptr,
                                     params.data(), nullptr, nullptr, 0);
    return Check(what, r);
  }

  // Runs a statement prepared by Prepare().
  Result<PgResult> ExecPrepared(const std::string& what, const char* name,
                                const std::vector<const char*>& params) {
    if (!connected()) return Status::Server(what + ": not connected to PostgreSQL");
    return Check(what, PQexecPrepared(c_, name, static_cast<int>(params.size()), params.data(),
                                      nullptr, nullptr, 0));
  }

  // Sends `n` statements in pipeline mode (`send(conn, i)` sends the i-th with
  // PQsendQueryPrepared and returns its result) and reads their results: one
  // round trip for all of them. Any failure closes the connection (the server
  // then rolls back the open transaction; Ensure() reconnects).
  Status Pipeline(const std::string& what, size_t n,
                  const std::function<int(PGconn*, size_t)>& send) {
    if (!connected()) return Status::Server(what + ": not connected to PostgreSQL");
    auto fail = [&](std::string msg) {
      if (msg.empty()) msg = Trim(PQerrorMessage(c_));
      Close();
      return Status::Server(what + ": " + msg);
    };
    if (!PQenterPipelineMode(c_)) return fail("");
    for (size_t i = 0; i < n; ++i) {
      if (!send(c_, i)) return fail("");
    }
    if (!PQpipelineSync(c_)) return fail("");
    std::string first_error;
    for (size_t i = 0; i < n; ++i) {
      PgResult r(PQgetResult(c_));
      if (!r.get()) return fail(first_error);
      ExecStatusType st = PQresultStatus(r.get());
      if (st == PGRES_FATAL_ERROR && first_error.empty()) {
        first_error = Trim(PQresultErrorMessage(r.get()));
      } else if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK &&
                 st != PGRES_PIPELINE_ABORTED && st != PGRES_FATAL_ERROR) {
        return fail("unexpected result " + std::string(PQresStatus(st)));
      }
      if (PgResult(PQgetResult(c_)).get() != nullptr) return fail("unexpected extra result");
    }
    PgResult sync(PQgetResult(c_));
    if (!sync.get() || PQresultStatus(sync.get()) != PGRES_PIPELINE_SYNC) return fail(first_error);
    if (!first_error.empty()) return fail(first_error);
    if (!PQexitPipelineMode(c_)) return fail("");
    return Status::Ok();
  }

  Status Prepare(const char* name, const char* sql, int params) {
    return Check("prepare " + std::string(name), PQprepare(c_, name, sql, params, nullptr))
        .status();
  }

  // Exec() for a statement that is safe to send twice (nothing of it can
  // have happened if it failed): when the connection turns out broken (say
  // the database restarted since its last use), reconnects and tries once more.
  Result<PgResult> ExecRetrying(const std::string& what, const char* sql,
                                const std::vector<const char*>& params = {}) {
    DROVER_RETURN_IF_ERROR(Ensure());
    auto r = Exec(what, sql, params);
    if (r.ok() || connected()) return r;
    LOG_WARN("PostgreSQL connection ({}) lost; reconnecting", role_);
    DROVER_RETURN_IF_ERROR(Ensure());
    return Exec(what, sql, params);
  }

 private:
  Result<PgResult> Check(const std::string& what, PGresult* raw) {
    PgResult r(raw);
    ExecStatusType st = raw ? PQresultStatus(raw) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return r;
    std::string msg = raw ? Trim(PQresultErrorMessage(raw)) : "";
    if (msg.empty()) msg = Trim(PQerrorMessage(c_));
    // A broken connection is closed here, so that the next Ensure() reconnects.
    if (PQstatus(c_) != CONNECTION_OK) Close();
    return Status::Server(what + ": " + msg);
  }

  std::string conninfo_;
  std::string role_;
  std::function<Status(Conn&)> on_connect_;
  PGconn* c_ = nullptr;
};

std::string RandomWriterId() {
  std::random_device rd;
  std::uniform_int_distribution<uint64_t> dist;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(dist(rd)));
  return buf;
}

class PgStore final : public Store {
 public:
  explicit PgStore(const std::string& conninfo)
      : writer_id_(RandomWriterId()),
        write_conn_(conninfo, "writer",
                    [](Conn& c) {
                      DROVER_RETURN_IF_ERROR(c.Prepare("put", kPutSql, 7));
                      DROVER_RETURN_IF_ERROR(c.Prepare("create", kCreateSql, 7));
                      return c.Prepare("delete", kDeleteSql, 2);
                    }),
        read_conn_(conninfo, "reader"),
        lease_conn_(conninfo, "lease",
                    [](Conn& c) {
                      // Let the database notice a vanished holder soon, so
                      // that another server takes the lease over.
                      return c
                          .Exec("lease keepalives",
                                "SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; "
                                "SET tcp_keepalives_count = 3")
                          .status();
                    }),
        writer_(std::make_unique<GroupCommitWriter>(
            [this](const GroupCommitWriter::Group& g, std::vector<Status>& each) {
              return Commit(g, each);
            })) {}

  ~PgStore() override {
    writer_.reset();  // commits what is queued, then stops (before the database goes)
  }

  // Creates or migrates the schema (openers take turns), then connects.
  Status Open(const std::string& conninfo) {
    {
      Conn c(conninfo, "migration");
      DROVER_RETURN_IF_ERROR(c.Ensure());
      DROVER_RETURN_IF_ERROR(c.Exec("begin migration", "BEGIN").status());
      Status s = Migrate(c);
      if (s.ok()) s = c.Exec("commit migration", "COMMIT").status();
      DROVER_RETURN_IF_ERROR(s);  // closing the connection rolls back
    }
    std::lock_guard<std::mutex> l(write_mu_);
    return write_conn_.Ensure();
  }

  Result<std::vector<Record>> LoadAll() override {
    std::lock_guard<std::mutex> l(read_mu_);
    Conn& c = read_conn_;
    DROVER_RETURN_IF_ERROR(
        c.ExecRetrying("begin load", "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").status());
    auto rows = c.Exec("load",
                       "SELECT kind, key, name, revision, seq, doc FROM resources "
                       "WHERE NOT deleted");
    auto top = rows.ok() ? c.Exec("load version",
                                  "SELECT coalesce(max(version), 0) FROM resources")
                         : rows.status();
    Status s = top.ok() ? c.Exec("end load", "COMMIT").status() : top.status();
    if (!s.ok()) {
      (void)c.Exec("end load", "ROLLBACK");
      return s;
    }
    std::vector<Record> out;
    out.reserve(rows->rows());
    for (int i = 0; i < rows->rows(); ++i) {
      out.push_back(Record{rows->text(i, 0), rows->text(i, 1), rows->text(i, 2),
                           rows->int64(i, 3), rows->int64(i, 4), rows->text(i, 5)});
    }
    last_seen_ = top->int64(0, 0);
    return out;
  }

  Result<Changes> PollChanges() override {
    std::lock_guard<std::mutex> l(read_mu_);
    Conn& c = read_conn_;
    // One snapshot for both: the rows others wrote, and how far the versions
    // go (past our own writes too, which are not reported).
    DROVER_RETURN_IF_ERROR(
        c.ExecRetrying("begin poll", "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").status());
    std::string since = std::to_string(last_seen_);
    auto rows = c.Exec("poll",
                       "SELECT kind, key, name, revision, seq, doc, deleted FROM resources "
                       "WHERE version > $1 AND writer <> $2 ORDER BY version",
                       {since.c_str(), writer_id_.c_str()});
    auto top = rows.ok() ? c.Exec("poll version",
                                  "SELECT coalesce(max(version), $1) FROM resources",
                                  {since.c_str()})
                         : rows.status();
    Status s = top.ok() ? c.Exec("end poll", "COMMIT").status() : top.status();
    if (!s.ok()) {
      (void)c.Exec("end poll", "ROLLBACK");
      return s;
    }
    Changes out;
    for (int i = 0; i < rows->rows(); ++i) {
      if (rows->boolean(i, 6)) {
        out.deletes.push_back(rows->text(i, 1));
      } else {
        out.puts.push_back(Record{rows->text(i, 0), rows->text(i, 1), rows->text(i, 2),
                                  rows->int64(i, 3), rows->int64(i, 4), rows->text(i, 5)});
      }
    }
    last_seen_ = std::max(last_seen_, top->int64(0, 0));
    return out;
  }

  Result<bool> TryLead() override {
    std::lock_guard<std::mutex> l(lease_mu_);
    Conn& c = lease_conn_;
    if (leading_) {
      // Held as long as the session lives: check that it does.
      if (c.Exec("lease check", "SELECT 1").ok()) return true;
      LOG_WARN("lost the scheduler lease: its PostgreSQL connection broke");
      leading_ = false;
      c.Close();
      return false;
    }
    std::string key = std::to_string(kLeaseLock);
    DROVER_ASSIGN_OR_RETURN(
        PgResult r, c.ExecRetrying("take lease", "SELECT pg_try_advisory_lock($1)", {key.c_str()}));
    leading_ = r.rows() == 1 && r.boolean(0, 0);
    return leading_;
  }

  size_t Pending() const override { return writer_->Pending(); }

  void Write(WriteBatch batch, std::function<void(Status)> done) override {
    writer_->Write(std::move(batch), std::move(done));
  }

 private:

  Status Migrate(Conn& c) {
    std::string key = std::to_string(kMigrateLock);
    DROVER_RETURN_IF_ERROR(
        c.Exec("lock schema", "SELECT pg_advisory_xact_lock($1)", {key.c_str()}).status());
    DROVER_RETURN_IF_ERROR(c.Exec("create schema_version",
                                  "CREATE TABLE IF NOT EXISTS schema_version("
                                  "version integer NOT NULL)")
                               .status());
    DROVER_ASSIGN_OR_RETURN(PgResult v,
                            c.Exec("read schema version", "SELECT version FROM schema_version"));
    int version = 0;
    if (v.rows() == 0) {
      DROVER_RETURN_IF_ERROR(
          c.Exec("init schema version", "INSERT INTO schema_version VALUES(0)").status());
    } else {
      version = static_cast<int>(v.int64(0, 0));
    }
    const int latest = static_cast<int>(std::size(kMigrations));
    if (version > latest) {
      return Status::Server("the database was written by a newer Drover (schema " +
                            std::to_string(version) + ", this build knows " +
                            std::to_string(latest) + ")");
    }
    for (int i = version; i < latest; ++i) {
      std::string n = std::to_string(i + 1);
      auto r = c.Exec("schema migration " + n, kMigrations[i]);
      if (!r.ok()) return Status::Server(r.status().message());
      DROVER_RETURN_IF_ERROR(c.Exec("record schema version",
                                    "UPDATE schema_version SET version = $1", {n.c_str()})
                                 .status());
    }
    return Status::Ok();
  }

  // Group commit, as in the SQLite store: the writer takes every waiting
  // batch and applies them all in one transaction; each caller hears about
  // its batch only after COMMIT returned. A failed transaction fails every
  // batch in it (the connection is re-established for the next group); a
  // batch refused on its own (a create_only put of a live key) is rolled back
  // to its savepoint and fails alone.
  Status Commit(const GroupCommitWriter::Group& group, std::vector<Status>& each) {
    std::lock_guard<std::mutex> l(write_mu_);
    Conn& c = write_conn_;
    // Commits in version order: versions are drawn only under this lock, and
    // it is released after the commit is visible, so a reader that saw
    // version v has seen every version below it.
    static const std::string begin =
        "BEGIN; SELECT pg_advisory_xact_lock(" + std::to_string(kWriteLock) + ")";
    DROVER_RETURN_IF_ERROR(c.ExecRetrying("begin", begin.c_str()).status());
    Status s = Apply(c, group, each);
    if (s.ok()) s = c.Exec("commit", "COMMIT").status();
    if (!s.ok() && c.connected()) (void)c.Exec("rollback", "ROLLBACK");
    return s;
  }

  // A put or a delete, to be sent pipelined.
  struct Op {
    const Record* put = nullptr;
    const std::string* del = nullptr;
  };

  Status Apply(Conn& c, const GroupCommitWriter::Group& group, std::vector<Status>& each) {
    // Batches without create_only puts go in one pipeline; a batch with one
    // runs statement by statement between savepoints: whether it applies
    // depends on what each of its creates found.
    std::vector<Op> ops;
    for (size_t i = 0; i < group.size(); ++i) {
      const WriteBatch& b = group[i].batch;
      const bool guarded = std::any_of(b.puts.begin(), b.puts.end(),
                                       [](const Record& r) { return r.create_only; });
      if (!guarded) {
        for (const Record& r : b.puts) ops.push_back(Op{&r, nullptr});
        for (const std::string& k : b.deletes) ops.push_back(Op{nullptr, &k});
        continue;
      }
      DROVER_RETURN_IF_ERROR(Send(c, ops));
      DROVER_RETURN_IF_ERROR(c.Exec("savepoint", "SAVEPOINT batch").status());
      for (const Record& r : b.puts) {
        std::string revision = std::to_string(r.revision), seq = std::to_string(r.seq);
        DROVER_ASSIGN_OR_RETURN(
            PgResult res,
            c.ExecPrepared("put " + r.key, r.create_only ? "create" : "put",
                           {r.key.c_str(), r.kind.c_str(), r.name.c_str(), revision.c_str(),
                            seq.c_str(), r.doc.c_str(), writer_id_.c_str()}));
        if (r.create_only && res.affected() == 0) {
          each[i] = Status::AlreadyExists(r.key + " already exists");
          break;
        }
      }
      if (!each[i].ok()) {
        DROVER_RETURN_IF_ERROR(c.Exec("rollback to savepoint", "ROLLBACK TO SAVEPOINT batch; "
                                      "RELEASE SAVEPOINT batch").status());
        continue;
      }
      for (const std::string& k : b.deletes) {
        DROVER_RETURN_IF_ERROR(
            c.ExecPrepared("delete " + k, "delete", {k.c_str(), writer_id_.c_str()}).status());
      }
      DROVER_RETURN_IF_ERROR(c.Exec("release", "RELEASE SAVEPOINT batch").status());
    }
    return Send(c, ops);
  }

  // Sends `ops` pipelined, in chunks (what a chunk's results take stays far
  // below the socket buffers, so sending never waits on unread results), and
  // clears it.
  Status Send(Conn& c, std::vector<Op>& ops) {
    constexpr size_t kChunk = 1000;
    for (size_t start = 0; start < ops.size(); start += kChunk) {
      const size_t n = std::min(kChunk, ops.size() - start);
      DROVER_RETURN_IF_ERROR(c.Pipeline("write", n, [&](PGconn* pg, size_t i) {
        const Op& op = ops[start + i];
        if (op.del) {
          const char* params[] = {op.del->c_str(), writer_id_.c_str()};
          return PQsendQueryPrepared(pg, "delete", 2, params, nullptr, nullptr, 0);
        }
        const Record& r = *op.put;
        std::string revision = std::to_string(r.revision), seq = std::to_string(r.seq);
        const char* params[] = {r.key.c_str(), r.kind.c_str(), r.name.c_str(), revision.c_str(),
                                seq.c_str(), r.doc.c_str(), writer_id_.c_str()};
        return PQsendQueryPrepared(pg, "put", 7, params, nullptr, nullptr, 0);
      }));
    }
    ops.clear();
    return Status::Ok();
  }

  const std::string writer_id_;
  int64_t last_seen_ = 0;  // guarded by read_mu_: the highest version PollChanges saw

  std::mutex write_mu_;  // guards write_conn_
  Conn write_conn_;
  std::mutex read_mu_;  // guards read_conn_, last_seen_
  Conn read_conn_;
  std::mutex lease_mu_;  // guards lease_conn_, leading_
  Conn lease_conn_;
  bool leading_ = false;

  std::unique_ptr<GroupCommitWriter> writer_;  // last: its thread uses the members above
};

}  // namespace

Result<std::unique_ptr<Store>> OpenPostgresStore(const std::string& conninfo) {
  auto store = std::make_unique<PgStore>(conninfo);
  DROVER_RETURN_IF_ERROR(store->Open(conninfo));
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace drover::store
