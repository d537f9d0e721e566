// Store: Drover's durable state. Only the service layer writes it.
//
// Thread-safety: a Store is safe for concurrent use. Write() may be called from
// any thread; batches are applied in the order Write() was called, each one
// atomically, and `done` runs on the store's writer thread once the batch is
// durable (or failed). LoadAll() is meant for start-up.
//
// Records are opaque to the store: a kind, a primary key (the ARN), a name and
// revision for lookups, a creation sequence for stable pagination, and the
// resource document as text. The service owns their meaning. A PostgreSQL
// implementation satisfies the same interface.
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
  // Write(): the batch fails with AlreadyExists (nothing of it applied) if a
  // record with this key exists: two servers cannot both create one key.
  bool create_only = false;

  bool operator==(const Record&) const = default;
};

struct WriteBatch {
  std::vector<Record> puts;         // insert or replace by key
  std::vector<std::string> deletes;  // keys
  bool empty() const { return puts.empty() && deletes.empty(); }
};

// What other store instances (other servers on a shared store) wrote.
struct Changes {
  std::vector<Record> puts;
  std::vector<std::string> deletes;  // keys
};

class Store {
 public:
  virtual ~Store() = default;
  virtual Result<std::vector<Record>> LoadAll() = 0;
  // Queues `batch`; `done(status)` runs once it is durable or has failed.
  virtual void Write(WriteBatch batch, std::function<void(Status)> done) = 0;
  // Write() and wait for it.
  Status WriteSync(WriteBatch batch);
  // Batches queued and not yet committed (for back-pressure).
  virtual size_t Pending() const = 0;

  // Several servers on one store (PostgreSQL). Single-server stores (SQLite)
  // keep these defaults: nothing changes behind the server's back, and it leads.
  //
  // Records other instances put or deleted since LoadAll() or the last call.
  virtual Result<Changes> PollChanges() { return Changes{}; }
  // The scheduler lease: true while this instance holds it (until its process
  // or its connection ends, when another instance can take it).
  virtual Result<bool> TryLead() { return true; }
};

// Opens (creating and migrating as needed) an SQLite store at `path` in WAL
// mode with synchronous=FULL. ":memory:" gives a private in-memory store.
Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path);

}  // namespace drover::store
