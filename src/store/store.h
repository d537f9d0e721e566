// Store: Drover's durable state. Only the service layer writes it.
//
// Thread-safety: a Store is safe for concurrent use. Write() may be called from
// any thread; batches are applied in the order Write() was called, each one
// atomically, and `done` runs on the store's writer thread once the batch is
// durable (or failed). LoadAll() is meant for start-up. PollChanges() and
// TryLead() may be called from any thread (each serializes with itself).
//
// Records are opaque to the store: a kind, a primary key (the ARN), a name and
// revision for lookups, a creation sequence for stable pagination, and the
// resource document as text. The service owns their meaning.
//
// Two implementations: SQLite (one server owns a data dir) and PostgreSQL
// (several servers may share one database). For the shared case the interface
// also offers create-only puts (a create that lost a race to another server
// fails instead of overwriting), PollChanges() (what the other servers wrote)
// and TryLead() (a lease: the one server that runs the scheduler).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace drover::store {

struct Record {
  std::string kind;  // e.g. "compute-environment", "job-queue", "access-key"
  std::string key;   // primary key: the ARN (or the access key id)
  std::string name;
  int64_t revision = 0;
  int64_t seq = 0;   // creation order, for pagination
  std::string doc;   // the document (JSON text)
  // On a put: fail the whole batch (nothing of it applied; other batches of
  // the same group commit are unaffected) with Code::kAlreadyExists if a
  // record with this key exists. Not stored: LoadAll and PollChanges return false.
  bool create_only = false;

  bool operator==(const Record&) const = default;
};

struct WriteBatch {
  std::vector<Record> puts;         // insert or replace by key (puts apply before deletes)
  std::vector<std::string> deletes;  // keys
  bool empty() const { return puts.empty() && deletes.empty(); }
};

// What other store instances wrote (see Store::PollChanges).
struct Changes {
  std::vector<Record> puts;          // the current record of each key put, in commit order
  std::vector<std::string> deletes;  // keys deleted
  bool empty() const { return puts.empty() && deletes.empty(); }
};

class Store {
 public:
  virtual ~Store() = default;
  // Every stored record, in no particular order (sorting a million rows by seq cost
  // more than half of a restart; the service orders what it needs).
  virtual Result<std::vector<Record>> LoadAll() = 0;
  // The same records, handed to `each` in chunks of up to `chunk` as they are
  // read, so that a caller can work on them meanwhile and drop their text (a
  // restart with a million jobs). `each` runs on the calling thread. The default
  // slices LoadAll().
  virtual Status Scan(size_t chunk, const std::function<void(std::vector<Record>&&)>& each);
  // Queues `batch`; `done(status)` runs once it is durable or has failed.
  virtual void Write(WriteBatch batch, std::function<void(Status)> done) = 0;
  // Write() and wait for it.
  Status WriteSync(WriteBatch batch);
  // Batches queued and not yet committed (for back-pressure).
  virtual size_t Pending() const = 0;

  // Records put or deleted by OTHER store instances (other server processes on
  // the same database) since this instance's LoadAll() or previous
  // PollChanges(); never this instance's own writes. A key written several
  // times appears once, with its latest state (a put, or a delete). A key
  // deleted by another instance may be reported even if this one never saw it.
  // Call LoadAll() first: it sets the starting point. An error changes nothing
  // (the next call returns the same changes and more).
  // Default (SQLite: one server per store): nothing, ever.
  virtual Result<Changes> PollChanges() { return Changes{}; }

  // The scheduler lease: true while this instance holds it. At most one
  // instance per database holds it at a time; it is released only when the
  // holder's process (its database session) ends, so another instance calling
  // TryLead() then takes over. Call it periodically: false means "not the
  // leader (any more)", e.g. when the lease's connection broke (the next call
  // tries to reconnect and to take the lease again). An error (the database is
  // unreachable) also means "not the leader".
  // Default (SQLite: one server per store): always true.
  virtual Result<bool> TryLead() { return true; }
};

struct SqliteOptions {
  // WAL frames (pages) written since the last checkpoint that wake the store's
  // checkpoint thread, which copies them into the database file on a connection
  // of its own while commits go on. Past 8 times this, a commit checkpoints
  // itself (a bound on the WAL's size should that thread fall behind).
  int checkpoint_frames = 8192;
  // Called on the checkpoint thread after each of its checkpoints, with the
  // frames it copied (for tests).
  std::function<void(int copied)> on_checkpoint;
};

// Opens (creating and migrating as needed) an SQLite store at `path` in WAL
// mode with synchronous=FULL. ":memory:" gives a private in-memory store.
Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path,
                                               const SqliteOptions& opts = {});

// Opens (creating and migrating the schema as needed) a PostgreSQL store.
// `conninfo` is a libpq connection string or URL (postgres://user@host:port/db).
// Commits are durable (synchronous_commit on, the server's default); a commit
// that fails (e.g. the database went away) fails its batches, and the store
// reconnects on its next use. Rows carry a version (from a sequence, assigned
// in commit order), their writer's id (random, per instance) and a tombstone
// flag, for PollChanges(); TryLead() holds a session advisory lock on a
// connection of its own.
Result<std::unique_ptr<Store>> OpenPostgresStore(const std::string& conninfo);

}  // namespace drover::store
