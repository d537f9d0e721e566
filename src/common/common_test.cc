#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <thread>

#include "common/clock.h"
#include "common/json.h"
#include "common/status.h"
#include "common/thread.h"

namespace drover {
namespace {

Result<int> Half(int x) {
  if (x % 2) return Status::Client("odd");
  return x / 2;
}

Result<int> Quarter(int x) {
  DROVER_ASSIGN_OR_RETURN(int h, Half(x));
  return Half(h);
}

TEST(StatusTest, ResultCarriesValueOrStatus) {
  // Given a chain of Result-returning calls, the first failure should propagate.
  EXPECT_EQ(*Quarter(8), 2);
  Result<int> r = Quarter(6);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kClient);
  EXPECT_EQ(r.status().message(), "odd");
}

TEST(ClockTest, RandomUuidsAreVersion7DistinctAndInTimeOrder) {
  RandomIds ids;
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    std::string u = ids.Uuid();
    ASSERT_EQ(u.size(), 36u);
    EXPECT_EQ(u[14], '7');
    EXPECT_TRUE(u[19] == '8' || u[19] == '9' || u[19] == 'a' || u[19] == 'b') << u;
    seen.insert(u);
  }
  EXPECT_EQ(seen.size(), 1000u);
  // One made a few milliseconds later sorts after every earlier one (their text too).
  std::string before = *seen.rbegin();
  std::this_thread::sleep_for(std::chrono::milliseconds(3));
  EXPECT_GT(ids.Uuid(), before);
}

TEST(ClockTest, FakeIdsAreDeterministic) {
  FakeIds ids;
  EXPECT_EQ(ids.Uuid(), "00000000-0000-4000-8000-000000000001");
  EXPECT_EQ(ids.Uuid(), "00000000-0000-4000-8000-000000000002");
}

TEST(JsonTest, MalformedJsonIsAClientError) {
  auto r = ParseJson("{\"a\": ");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kClient);
  auto ok = ParseJson(R"({"a": 5, "b": "x", "c": true})");
  ASSERT_TRUE(ok.ok());
  const auto& o = ok->as_object();
  EXPECT_EQ(GetInt(o, "a"), 5);
  EXPECT_EQ(GetString(o, "b"), "x");
  EXPECT_EQ(GetBool(o, "c"), true);
  EXPECT_EQ(GetString(o, "a"), std::nullopt);
}

TEST(JsonTest, NumbersPastADoublesRangeAreFound) {
  // Boost.JSON parses 1E5000 as infinity (and would write `Infinity`, not JSON).
  auto inf = ParseJson(R"({"a": [1, {"b": 1E005000}]})");
  ASSERT_TRUE(inf.ok());
  EXPECT_TRUE(HasNonFiniteNumber(*inf));
  auto fine = ParseJson(R"({"a": [1.5e300, -2, {"b": 1e-999, "c": "1E5000"}]})");
  ASSERT_TRUE(fine.ok());
  EXPECT_FALSE(HasNonFiniteNumber(*fine));
}

}  // namespace
}  // namespace drover

#include "common/base64.h"

namespace drover {
namespace {

TEST(ThreadTest, NamesOnlyTheCallingThreadAndCutsAt15Characters) {
  std::string before = ThreadName();
  std::string inside;
  std::thread t([&] {
    SetThreadName("drover-a-long-thread-name");
    inside = ThreadName();
  });
  t.join();
  EXPECT_EQ(inside, "drover-a-long-t");
  EXPECT_EQ(ThreadName(), before);
}

TEST(Base64Test, RoundTripsAndRejectsGarbage) {
  for (std::string s : {"", "a", "ab", "abc", "abcd", "seq:12345"}) {
    EXPECT_EQ(Base64Decode(Base64Encode(s)), s);
  }
  EXPECT_EQ(Base64Encode("abc"), "YWJj");
  EXPECT_EQ(Base64Encode("ab"), "YWI=");
  EXPECT_FALSE(Base64Decode("YW!j"));
  EXPECT_FALSE(Base64Decode("YWJ"));
  EXPECT_FALSE(Base64Decode("Y=Jj"));
}

}  // namespace
}  // namespace drover
