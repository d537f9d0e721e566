#include "common/clock.h"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>

namespace drover {

int64_t SystemClock::NowMillis() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

namespace {
std::mt19937_64& Rng() {
  thread_local std::mt19937_64 rng([] {
    std::random_device rd;
    std::seed_seq seq{rd(), rd(), rd(), rd(), rd(), rd(), rd(), rd()};
    return std::mt19937_64(seq);
  }());
  return rng;
}
}  // namespace

std::string RandomIds::Uuid() {
  uint64_t hi = Rng()(), lo = Rng()();
  uint64_t ms = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch()).count());
  hi = (ms << 16) | (hi & 0x0fff) | 0x7000;  // version 7
  lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // variant 10
  char buf[37];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx",
                static_cast<unsigned>(hi >> 32), static_cast<unsigned>((hi >> 16) & 0xffff),
                static_cast<unsigned>(hi & 0xffff), static_cast<unsigned>(lo >> 48),
                static_cast<unsigned long long>(lo & 0xffffffffffffULL));
  return buf;
}

std::string RandomIds::Token(size_t n, std::string_view alphabet) {
  // Secrets come from the OS entropy pool, not the PRNG.
  std::random_device rd;
  std::uniform_int_distribution<size_t> pick(0, alphabet.size() - 1);
  std::string out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) out.push_back(alphabet[pick(rd)]);
  return out;
}

std::string FakeIds::Uuid() {
  std::lock_guard<std::mutex> l(mu_);
  char buf[37];
  std::snprintf(buf, sizeof buf, "00000000-0000-4000-8000-%012llx",
                static_cast<unsigned long long>(next_++));
  return buf;
}

std::string FakeIds::Token(size_t n, std::string_view alphabet) {
  std::lock_guard<std::mutex> l(mu_);
  std::string out;
  for (size_t i = 0; i < n; ++i) out.push_back(alphabet[(next_ + i) % alphabet.size()]);
  ++next_;
  return out;
}

}  // namespace drover
