// Clock and IdGenerator: injected time and identifiers (envoy's TimeSource,
// nomad's "the store never calls now()"). Production code takes a Clock& and
// an IdGenerator&; tests pass FakeClock / FakeIds.
//
// Thread-safety: SystemClock and RandomIds are safe for concurrent use.
// FakeClock and FakeIds are safe too (atomics / a mutex) so tests may share them.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

namespace drover {

class Clock {
 public:
  virtual ~Clock() = default;
  // Milliseconds since the Unix epoch (wall clock: what AWS returns as createdAt etc.).
  virtual int64_t NowMillis() const = 0;
};

class SystemClock final : public Clock {
 public:
  int64_t NowMillis() const override;
};

class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t start_ms = 1700000000000) : now_(start_ms) {}
  int64_t NowMillis() const override { return now_.load(); }
  void Advance(int64_t ms) { now_ += ms; }
  void Set(int64_t ms) { now_ = ms; }

 private:
  std::atomic<int64_t> now_;
};

class IdGenerator {
 public:
  virtual ~IdGenerator() = default;
  // A UUID in canonical lower-case text form: version 7 (RFC 9562), 48 bits of
  // Unix milliseconds then 74 random bits. Job ids are store keys: ids that grow
  // with time are inserted at the end of the store's key index instead of at
  // random pages of it (with a million jobs stored, SubmitJob's p99 fell from about
  // 70 to 20 ms; docs/performance.md).
  // FakeIds (tests) keep the version-4 layout.
  virtual std::string Uuid() = 0;
  // `n` characters drawn from `alphabet` (for access keys and secrets).
  virtual std::string Token(size_t n, std::string_view alphabet) = 0;
};

class RandomIds final : public IdGenerator {
 public:
  std::string Uuid() override;
  std::string Token(size_t n, std::string_view alphabet) override;
};

// Deterministic ids for tests: 00000000-0000-4000-8000-000000000001, ...
class FakeIds final : public IdGenerator {
 public:
  std::string Uuid() override;
  std::string Token(size_t n, std::string_view alphabet) override;

 private:
  std::mutex mu_;
  uint64_t next_ = 1;
};

}  // namespace drover
