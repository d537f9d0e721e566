// Shared by the fuzz targets: a real BatchService in a fresh in-memory world,
// a log root with a few streams, and the checks every response must pass.
// Built twice: with clang + libFuzzer (DROVER_FUZZ=ON) and with GCC as a
// replay driver under ctest (replay_main.cc), so the same entry points run
// the corpus and the regressions in the normal test suite.
//
// Thread-safety: none; a fuzz target runs one input at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "api/router.h"
#include "common/clock.h"
#include "logs/logs.h"
#include "service/batch_service.h"
#include "store/store.h"

namespace drover::fuzz {

// Crashes (abort) with `what` when `ok` is false: the fuzzer records the input.
void Check(bool ok, std::string_view what);

// With DROVER_FUZZ_VERBOSE=1 in the environment, prints `what` to stderr (to
// see what seeds reach: `DROVER_FUZZ_VERBOSE=1 build/fuzz/fuzz_ops_replay fuzz/corpus/ops`).
void Trace(std::string_view what);

// Silences logging and the like; called from every target's first input.
void InitOnce();

// A BatchService over ":memory:" SQLite with a FakeClock and FakeIds and no
// executor (nothing ever runs), holding an access key, a compute environment
// "ce", a job queue "q", a job definition "jd" (revision 1), a submitted job, a
// scheduling policy "sp" and a consumable resource "cr". Fresh per input, so
// every input reproduces on its own.
struct World {
  World();
  ~World();
  FakeClock clock;
  FakeIds ids;
  std::unique_ptr<store::Store> store;
  std::unique_ptr<service::BatchService> svc;
  std::string key_id, secret;
  std::string queue_arn, job_id;
};

// Everything a client can read of `svc`'s state (every resource, job, tag and
// access key count), as text: two services hold the same state exactly when
// their snapshots are equal. Used to check that a refused request changed
// nothing, and that what the service answers from memory is what it stored.
std::string Snapshot(service::BatchService& svc, const World& w);

// A directory (made once per process, removed at exit) holding log group
// "/aws/batch/job" with streams "jd/default/a" and "jd/default/b", and group
// "other" with stream "s".
const std::string& LogRoot();

// Every response Drover sends must have a sane status and, when it has a body,
// a JSON one; an error must name its type.
void CheckResponse(const api::HttpResponse& r);

}  // namespace drover::fuzz
