#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/time.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "common/clock.h"
#include "common/json.h"
#include "logs/internal.h"
#include "logs/logs.h"

namespace drover::logs {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kT0 = 1700000000000;
constexpr const char* kGroup = "/aws/batch/job";

std::string MakeTempDir() {
  char tmpl[] = "/tmp/drover_logs_test_XXXXXX";
  const char* dir = ::mkdtemp(tmpl);
  return dir ? dir : "/tmp/drover_logs_test_failed";
}

class LogsTest : public ::testing::Test {
 protected:
  ~LogsTest() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  std::unique_ptr<StreamWriter> Open(const std::string& stream, uint64_t cap = 0,
                                     const std::string& group = kGroup) {
    auto w = StreamWriter::Open(root_, group, stream, cap, clock_);
    EXPECT_TRUE(w.ok()) << w.status().ToString();
    return w.ok() ? std::move(w).value() : nullptr;
  }

  // Writes one event per message, `step` ms apart, starting at the clock's time.
  void WriteEvents(const std::string& stream, const std::vector<std::string>& messages,
                   int64_t step = 10, const std::string& group = kGroup) {
    auto w = Open(stream, 0, group);
    ASSERT_TRUE(w);
    for (const auto& m : messages) {
      ASSERT_TRUE(w->Write(m + "\n").ok());
      clock_.Advance(step);
    }
    ASSERT_TRUE(w->Close().ok());
  }

  std::vector<std::string> Messages(const std::string& stream, const std::string& group = kGroup) {
    auto r = store_.ReadAll(group, stream);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    std::vector<std::string> out;
    if (r.ok()) {
      for (const auto& e : *r) out.push_back(e.message);
    }
    return out;
  }

  Result<json::object> Call(std::string_view op, std::string_view body) {
    auto v = ParseJson(body);
    EXPECT_TRUE(v.ok()) << body;
    return service_.Call(op, v.ok() ? *v : json::value());
  }

  json::object MustCall(std::string_view op, std::string_view body) {
    auto r = Call(op, body);
    EXPECT_TRUE(r.ok()) << op << " " << body << ": " << r.status().ToString();
    return r.ok() ? *r : json::object();
  }

  static std::vector<std::string> EventMessages(const json::object& reply) {
    std::vector<std::string> out;
    for (const auto& e : reply.at("events").as_array()) {
      out.emplace_back(e.as_object().at("message").as_string());
    }
    return out;
  }

  static std::string Str(const json::object& o, std::string_view key) {
    auto s = GetString(o, key);
    return s ? std::string(*s) : std::string();
  }

  const std::string root_ = MakeTempDir();
  FakeClock clock_{kT0};
  LogStore store_{root_};
  LogsService service_{store_, "eu-west-1", "111122223333"};
};

// ---------------------------------------------------------------- writer

TEST_F(LogsTest, WriterJoinsPartialLinesAcrossWritesAndStampsWhenTheLineCompletes) {
  auto w = Open("s");
  ASSERT_TRUE(w->Write("hel").ok());
  clock_.Advance(5);
  ASSERT_TRUE(w->Write("lo\nwor").ok());
  clock_.Advance(7);
  ASSERT_TRUE(w->Write("ld\n").ok());
  ASSERT_TRUE(w->Close().ok());
  auto events = *store_.ReadAll(kGroup, "s");
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].message, "hello");
  EXPECT_EQ(events[0].timestamp_ms, kT0 + 5);
  EXPECT_EQ(events[0].ingestion_ms, kT0 + 5);
  EXPECT_EQ(events[1].message, "world");
  EXPECT_EQ(events[1].timestamp_ms, kT0 + 12);
}

TEST_F(LogsTest, WriterDropsCrBeforeLfKeepsOtherCrAndSkipsEmptyLines) {
  auto w = Open("s");
  ASSERT_TRUE(w->Write("a\r\nb\r").ok());
  ASSERT_TRUE(w->Write("\n\n\r\nc\rd\n").ok());
  ASSERT_TRUE(w->Close().ok());
  EXPECT_EQ(Messages("s"), (std::vector<std::string>{"a", "b", "c\rd"}));
}

TEST_F(LogsTest, WriterCloseFlushesTrailingPartialLineAndLaterWritesFail) {
  auto w = Open("s");
  ASSERT_TRUE(w->Write("first\nno newline").ok());
  ASSERT_TRUE(w->Close().ok());
  EXPECT_EQ(Messages("s"), (std::vector<std::string>{"first", "no newline"}));
  EXPECT_FALSE(w->Write("more\n").ok());
}

TEST_F(LogsTest, WriterSplitsLinesLongerThan256KiBAtCharacterBoundaries) {
  // 3-byte characters: kMaxMessageBytes (262118) is not a multiple of 3, so a
  // naive cut would split a character.
  std::string euro = "\xE2\x82\xAC";
  std::string line;
  while (line.size() < 2 * kMaxMessageBytes + 1000) line += euro;
  auto w = Open("s");
  ASSERT_TRUE(w->Write(line.substr(0, 100000)).ok());  // partial first
  ASSERT_TRUE(w->Write(line.substr(100000) + "\n").ok());
  ASSERT_TRUE(w->Close().ok());
  auto msgs = Messages("s");
  ASSERT_EQ(msgs.size(), 3u);
  EXPECT_EQ(msgs[0].size(), kMaxMessageBytes - kMaxMessageBytes % 3);
  EXPECT_EQ(msgs[1].size(), kMaxMessageBytes - kMaxMessageBytes % 3);
  std::string joined;
  for (const auto& m : msgs) {
    EXPECT_TRUE(internal::IsValidUtf8(m));
    joined += m;
  }
  EXPECT_EQ(joined, line);
}

TEST_F(LogsTest, WriterEmitsAnEndlessLineInPiecesWithoutWaitingForItsEnd) {
  auto w = Open("s");
  ASSERT_TRUE(w->Write(std::string(kMaxMessageBytes + 10, 'x')).ok());
  // Readable before the line ends: the writer does not buffer without bound.
  EXPECT_EQ(Messages("s"), std::vector<std::string>{std::string(kMaxMessageBytes, 'x')});
  ASSERT_TRUE(w->Close().ok());
  EXPECT_EQ(Messages("s").size(), 2u);
}

TEST_F(LogsTest, WriterCapWritesWhatFitsThenOneMarkerAndDropsTheRest) {
  auto w = Open("s", /*cap=*/12);
  ASSERT_TRUE(w->Write("12345\n67890abc\nmore\n").ok());
  ASSERT_TRUE(w->Write("even more\n").ok());
  ASSERT_TRUE(w->Close().ok());
  EXPECT_TRUE(w->truncated());
  EXPECT_EQ(Messages("s"),
            (std::vector<std::string>{
                "12345", "67890ab",
                "[drover] output truncated: this attempt exceeded its limit of 12 bytes"}));
}

TEST_F(LogsTest, WriterUnderTheCapWritesNoMarker) {
  auto w = Open("s", /*cap=*/10);
  ASSERT_TRUE(w->Write("12345\n67890\n").ok());
  ASSERT_TRUE(w->Close().ok());
  EXPECT_FALSE(w->truncated());
  EXPECT_EQ(Messages("s"), (std::vector<std::string>{"12345", "67890"}));
}

TEST_F(LogsTest, WriterReplacesInvalidUtf8WithReplacementCharacter) {
  auto w = Open("s");
  ASSERT_TRUE(w->Write("ok \xC3\xA9 bad \xFF\xC3 end\n").ok());
  ASSERT_TRUE(w->Close().ok());
  EXPECT_EQ(Messages("s"),
            std::vector<std::string>{"ok \xC3\xA9 bad \xEF\xBF\xBD\xEF\xBF\xBD end"});
}

TEST_F(LogsTest, WriterNeverLetsTimestampsGoBackwards) {
  auto w = Open("s");
  ASSERT_TRUE(w->Write("a\n").ok());
  clock_.Set(kT0 - 60000);
  ASSERT_TRUE(w->Write("b\n").ok());
  ASSERT_TRUE(w->Close().ok());
  // Also across writers: a reopened stream continues from its last timestamp.
  auto w2 = Open("s");
  ASSERT_TRUE(w2->Write("c\n").ok());
  ASSERT_TRUE(w2->Close().ok());
  auto events = *store_.ReadAll(kGroup, "s");
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[1].timestamp_ms, kT0);
  EXPECT_EQ(events[2].timestamp_ms, kT0);
}

TEST_F(LogsTest, ReopenedWriterStartsOnANewLineAfterATornWrite) {
  WriteEvents("s", {"one"});
  std::string path = StreamPath(root_, kGroup, "s");
  { std::ofstream(path, std::ios::app) << std::to_string(kT0 + 10) << "\t17"; }  // torn line
  WriteEvents("s", {"two"});
  EXPECT_EQ(Messages("s"), (std::vector<std::string>{"one", "two"}));
}

// ---------------------------------------------------------------- store

TEST_F(LogsTest, FilesLiveAtPercentEncodedPaths) {
  WriteEvents("job/default/4f1c", {"x"});
  EXPECT_TRUE(fs::exists(root_ + "/%2Faws%2Fbatch%2Fjob/job%2Fdefault%2F4f1c.log"));
  EXPECT_EQ(EncodeName("a b:c"), "a%20b%3Ac");
  EXPECT_EQ(EncodeName(".."), "%2E%2E");
  EXPECT_EQ(DecodeName("%2E%2E"), "..");
  EXPECT_EQ(DecodeName("a%2Eb"), std::nullopt);  // not canonical: a.b is "a.b"
  EXPECT_EQ(DecodeName("a%2"), std::nullopt);
}

TEST_F(LogsTest, ReadAllRoundTripsEventsWithLineOffsets) {
  WriteEvents("s", {"alpha", "beta\twith tab", "gamma"});
  auto events = *store_.ReadAll(kGroup, "s");
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].offset, 0);
  EXPECT_EQ(events[1].message, "beta\twith tab");
  EXPECT_EQ(events[2].timestamp_ms, kT0 + 20);
  std::string line0 = std::to_string(kT0) + "\t" + std::to_string(kT0) + "\talpha\n";
  EXPECT_EQ(events[1].offset, static_cast<int64_t>(line0.size()));
}

TEST_F(LogsTest, ReadersIgnoreATrailingPartialLineAndMalformedLines) {
  WriteEvents("s", {"one"});
  { std::ofstream(StreamPath(root_, kGroup, "s"), std::ios::app) << "garbage\n5\t5\tpartial"; }
  EXPECT_EQ(Messages("s"), std::vector<std::string>{"one"});
  auto info = store_.Stream(kGroup, "s");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->first_event_ms, kT0);
  EXPECT_EQ(info->last_event_ms, kT0);
}

TEST_F(LogsTest, ReadAllOfUnknownGroupOrStreamIsNotFound) {
  WriteEvents("s", {"one"});
  LogStore& store = store_;
  auto g = store.ReadAll("/nope", "s");
  EXPECT_EQ(g.status().code(), Code::kNotFound);
  EXPECT_EQ(g.status().message(), "The specified log group does not exist.");
  auto s = store.ReadAll(kGroup, "nope");
  EXPECT_EQ(s.status().code(), Code::kNotFound);
  EXPECT_EQ(s.status().message(), "The specified log stream does not exist.");
}

TEST_F(LogsTest, StreamsReportsTimesAndSizesSortedByName) {
  WriteEvents("b", {"x", "y"});
  clock_.Advance(1000);
  WriteEvents("a", {"z"});
  LogStore& store = store_;
  auto streams = store.Streams(kGroup);
  ASSERT_TRUE(streams.ok());
  ASSERT_EQ(streams->size(), 2u);
  EXPECT_EQ((*streams)[0].name, "a");
  EXPECT_EQ((*streams)[1].name, "b");
  EXPECT_EQ((*streams)[1].first_event_ms, kT0);
  EXPECT_EQ((*streams)[1].creation_ms, kT0);
  EXPECT_EQ((*streams)[1].last_event_ms, kT0 + 10);
  EXPECT_EQ((*streams)[1].stored_bytes, fs::file_size(StreamPath(root_, kGroup, "b")));
  EXPECT_EQ(*store.Groups(), std::vector<std::string>{kGroup});
}

TEST_F(LogsTest, PruneRemovesStreamsOlderThanTheCutoffAndEmptiedGroups) {
  clock_.Set(1000000);  // opened (registered) in 1970, like their files below
  WriteEvents("old", {"x"});
  WriteEvents("old", {"z"}, 10, "/other");
  clock_.Set(kT0);
  WriteEvents("new", {"y"});
  auto age = [&](const std::string& group, const std::string& stream) {
    struct timeval tv[2] = {{1000, 0}, {1000, 0}};  // 1970
    ASSERT_EQ(::utimes(StreamPath(root_, group, stream).c_str(), tv), 0);
  };
  age(kGroup, "old");
  age("/other", "old");
  LogStore& store = store_;
  auto removed = store.Prune(/*cutoff_ms=*/2000000);
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(*removed, 2);
  EXPECT_EQ(*store.Groups(), std::vector<std::string>{kGroup});
  auto streams = *store.Streams(kGroup);
  ASSERT_EQ(streams.size(), 1u);
  EXPECT_EQ(streams[0].name, "new");
  // A writer can still create a stream in a pruned group.
  WriteEvents("again", {"w"}, 10, "/other");
  EXPECT_EQ(Messages("again", "/other"), std::vector<std::string>{"w"});
}

TEST_F(LogsTest, AStreamWithoutEventsExistsEmptyFromItsOpeningAndHasNoFile) {
  auto w = Open("job/default/quiet");
  ASSERT_TRUE(w);
  clock_.Advance(50);
  // Open and empty while its writer runs, as a CloudWatch stream is from the start.
  auto info = store_.Stream(kGroup, "job/default/quiet");
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->creation_ms, kT0);
  EXPECT_EQ(info->first_event_ms, 0);
  EXPECT_EQ(info->stored_bytes, 0u);
  EXPECT_TRUE(Messages("job/default/quiet").empty());
  auto reply = MustCall("GetLogEvents",
                        R"({"logGroupName":"/aws/batch/job","logStreamName":"job/default/quiet"})");
  EXPECT_TRUE(EventMessages(reply).empty());
  auto past_end = store_.Scan(kGroup, "job/default/quiet", 10,
                              [](const LogEvent&, int64_t) { return true; });
  EXPECT_EQ(past_end.status().code(), Code::kClient);
  ASSERT_TRUE(w->Close().ok());
  // No inode for it: only a line in the group's registry.
  EXPECT_FALSE(fs::exists(StreamPath(root_, kGroup, "job/default/quiet")));
  WriteEvents("loud", {"x"});
  auto streams = *store_.Streams(kGroup);
  ASSERT_EQ(streams.size(), 2u);
  EXPECT_EQ(streams[0].name, "job/default/quiet");
  EXPECT_EQ(streams[0].creation_ms, kT0);
  EXPECT_EQ(streams[1].name, "loud");
  EXPECT_EQ(*store_.Groups(), std::vector<std::string>{kGroup});
}

TEST_F(LogsTest, ARegisteredStreamThatGetsEventsIsOneStreamWithItsFile) {
  auto w = Open("s");
  clock_.Advance(5);
  ASSERT_TRUE(w->Write("late\n").ok());
  ASSERT_TRUE(w->Close().ok());
  EXPECT_TRUE(fs::exists(StreamPath(root_, kGroup, "s")));
  auto streams = *store_.Streams(kGroup);
  ASSERT_EQ(streams.size(), 1u);
  EXPECT_EQ(streams[0].first_event_ms, kT0 + 5);
  EXPECT_EQ(streams[0].creation_ms, kT0);  // opened then, as CloudWatch's creationTime
  EXPECT_EQ(store_.Stream(kGroup, "s")->creation_ms, kT0);
  EXPECT_EQ(Messages("s"), std::vector<std::string>{"late"});
}

TEST_F(LogsTest, PruneForgetsStreamsRegisteredBeforeTheCutoffThatNeverHadAnEvent) {
  auto a = Open("old-quiet", 0, "/quiet");
  ASSERT_TRUE(a->Close().ok());
  auto b = Open("old-quiet");
  ASSERT_TRUE(b->Close().ok());
  clock_.Advance(1000);
  auto c = Open("new-quiet");
  ASSERT_TRUE(c->Close().ok());
  auto removed = store_.Prune(/*cutoff_ms=*/kT0 + 500);
  ASSERT_TRUE(removed.ok()) << removed.status().ToString();
  EXPECT_EQ(*removed, 2);
  EXPECT_EQ(store_.Stream(kGroup, "old-quiet").status().code(), Code::kNotFound);
  EXPECT_TRUE(store_.Stream(kGroup, "new-quiet").ok());
  // A group left with nothing goes, registry and all.
  EXPECT_EQ(*store_.Groups(), std::vector<std::string>{kGroup});
  EXPECT_FALSE(fs::exists(root_ + "/%2Fquiet"));
  // And a writer can register in it again.
  auto d = Open("again", 0, "/quiet");
  ASSERT_TRUE(d->Close().ok());
  EXPECT_TRUE(store_.Stream("/quiet", "again").ok());
}

TEST_F(LogsTest, NoRegistrationIsLostWhilePruneRewritesTheRegistry) {
  // One thread registers streams while another keeps rewriting every shard
  // (each gets an expired line to drop first): every registration must survive.
  constexpr int kStreams = 1500;
  std::atomic<bool> done{false};
  std::thread pruner([&] {
    const std::string reg = root_ + "/%2Faws%2Fbatch%2Fjob/.streams";
    while (!done) {
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(reg, ec)) {
        if (e.path().filename().string().size() == 2) std::ofstream(e.path(), std::ios::app) << "x\t1\n";
      }
      (void)store_.Prune(/*cutoff_ms=*/2);
    }
  });
  for (int i = 0; i < kStreams; ++i) {
    auto w = StreamWriter::Open(root_, kGroup, "s" + std::to_string(i), 0, clock_);
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    ASSERT_TRUE((*w)->Close().ok());
  }
  done = true;
  pruner.join();
  auto streams = store_.Streams(kGroup);
  ASSERT_TRUE(streams.ok()) << streams.status().ToString();
  std::set<std::string> names;
  for (const auto& s : *streams) names.insert(s.name);
  names.erase("x");
  EXPECT_EQ(names.size(), static_cast<size_t>(kStreams));
}

// ---------------------------------------------------------------- GetLogEvents

TEST_F(LogsTest, GetLogEventsReturnsTheNewestEventsByDefaultAndTheOldestFromHead) {
  WriteEvents("s", {"1", "2", "3", "4", "5"});
  auto newest = MustCall("GetLogEvents",
                         R"({"logGroupName":"/aws/batch/job","logStreamName":"s","limit":2})");
  EXPECT_EQ(EventMessages(newest), (std::vector<std::string>{"4", "5"}));
  auto e = newest.at("events").as_array()[0].as_object();
  EXPECT_EQ(*GetInt(e, "timestamp"), kT0 + 30);
  EXPECT_EQ(*GetInt(e, "ingestionTime"), kT0 + 30);
  EXPECT_EQ(Str(newest, "nextForwardToken").substr(0, 2), "f/");
  EXPECT_EQ(Str(newest, "nextBackwardToken").substr(0, 2), "b/");
  auto head = MustCall("GetLogEvents", R"({"logGroupName":"/aws/batch/job","logStreamName":"s",
                                           "limit":2,"startFromHead":true})");
  EXPECT_EQ(EventMessages(head), (std::vector<std::string>{"1", "2"}));
  auto all = MustCall("GetLogEvents", R"({"logGroupName":"/aws/batch/job","logStreamName":"s"})");
  EXPECT_EQ(EventMessages(all).size(), 5u);
}

TEST_F(LogsTest, GetLogEventsForwardPagingEndsWithAnEmptyPageAndTheSameToken) {
  WriteEvents("s", {"1", "2", "3", "4", "5"});
  std::vector<std::string> seen;
  std::string token;
  json::object page = MustCall("GetLogEvents", R"({"logGroupName":"/aws/batch/job",
      "logStreamName":"s","limit":2,"startFromHead":true})");
  for (int i = 0; i < 10; ++i) {
    for (auto& m : EventMessages(page)) seen.push_back(m);
    std::string next = Str(page, "nextForwardToken");
    if (next == token) break;
    token = next;
    page = MustCall("GetLogEvents", R"({"logGroupName":"/aws/batch/job","logStreamName":"s",
        "limit":2,"startFromHead":true,"nextToken":")" +
                                        token + "\"}");
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"1", "2", "3", "4", "5"}));
  EXPECT_TRUE(page.at("events").as_array().empty());
  EXPECT_EQ(Str(page, "nextForwardToken"), token);
  // New events after the end are picked up with the same token.
  clock_.Advance(100);
  WriteEvents("s", {"6"});
  auto more = MustCall("GetLogEvents", R"({"logGroupName":"/aws/batch/job","logStreamName":"s",
      "startFromHead":true,"nextToken":")" +
                                           token + "\"}");
  EXPECT_EQ(EventMessages(more), std::vector<std::string>{"6"});
}

TEST_F(LogsTest, GetLogEventsBackwardPagingWalksToTheStartThenRepeatsTheToken) {
  WriteEvents("s", {"1", "2", "3", "4", "5"});
  auto page = MustCall("GetLogEvents",
                       R"({"logGroupName":"/aws/batch/job","logStreamName":"s","limit":2})");
  EXPECT_EQ(EventMessages(page), (std::vector<std::string>{"4", "5"}));
  std::vector<std::vector<std::string>> pages;
  std::string token = Str(page, "nextBackwardToken");
  for (int i = 0; i < 10; ++i) {
    page = MustCall("GetLogEvents", R"({"logGroupName":"/aws/batch/job","logStreamName":"s",
        "limit":2,"nextToken":")" + token +
                                        "\"}");
    pages.push_back(EventMessages(page));
    if (Str(page, "nextBackwardToken") == token) break;
    token = Str(page, "nextBackwardToken");
  }
  EXPECT_EQ(pages, (std::vector<std::vector<std::string>>{{"2", "3"}, {"1"}, {}}));
  // And forward again from a backward page.
  auto fwd = MustCall("GetLogEvents", R"({"logGroupName":"/aws/batch/job","logStreamName":"s",
      "limit":2,"nextToken":")" + Str(page, "nextForwardToken") +
                                          "\"}");
  EXPECT_EQ(EventMessages(fwd), (std::vector<std::string>{"1", "2"}));
}

TEST_F(LogsTest, GetLogEventsTimeWindowIncludesStartAndExcludesEnd) {
  WriteEvents("s", {"t0", "t10", "t20", "t30"});
  std::string body = R"({"logGroupName":"/aws/batch/job","logStreamName":"s","startTime":)" +
                     std::to_string(kT0 + 10) + R"(,"endTime":)" + std::to_string(kT0 + 30);
  EXPECT_EQ(EventMessages(MustCall("GetLogEvents", body + "}")),
            (std::vector<std::string>{"t10", "t20"}));
  EXPECT_EQ(EventMessages(MustCall("GetLogEvents", body + R"(,"startFromHead":true})")),
            (std::vector<std::string>{"t10", "t20"}));
}

TEST_F(LogsTest, GetLogEventsOnAnEmptyStreamStillReturnsBothTokens) {
  auto w = Open("empty");
  ASSERT_TRUE(w->Close().ok());
  auto r = MustCall("GetLogEvents",
                    R"({"logGroupIdentifier":"/aws/batch/job","logStreamName":"empty"})");
  EXPECT_TRUE(r.at("events").as_array().empty());
  EXPECT_FALSE(Str(r, "nextForwardToken").empty());
  EXPECT_FALSE(Str(r, "nextBackwardToken").empty());
}

TEST_F(LogsTest, GetLogEventsAcceptsALogGroupArnAsIdentifier) {
  WriteEvents("s", {"x"});
  auto r = MustCall("GetLogEvents", R"({"logGroupIdentifier":
      "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/batch/job","logStreamName":"s"})");
  EXPECT_EQ(EventMessages(r), std::vector<std::string>{"x"});
  // As in the model's pattern: the identifier is the ARN without the trailing ":*".
  auto star = Call("GetLogEvents", R"({"logGroupIdentifier":
      "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/batch/job:*","logStreamName":"s"})");
  EXPECT_EQ(ToLogsError(star.status()).type, "InvalidParameterException");
  auto other = Call("GetLogEvents", R"({"logGroupIdentifier":
      "arn:aws:logs:eu-west-1:999999999999:log-group:/aws/batch/job","logStreamName":"s"})");
  EXPECT_EQ(other.status().code(), Code::kNotFound);
}

TEST_F(LogsTest, GetLogEventsValidatesItsParameters) {
  WriteEvents("s", {"x"});
  auto missing = Call("GetLogEvents", R"({"logGroupName":"/aws/batch/job"})");
  EXPECT_EQ(ToLogsError(missing.status()).type, "InvalidParameterException");
  EXPECT_EQ(missing.status().message(),
            "1 validation error detected: Value null at 'logStreamName' failed to satisfy "
            "constraint: Member must not be null");
  auto limit =
      Call("GetLogEvents", R"({"logGroupName":"/aws/batch/job","logStreamName":"s","limit":0})");
  EXPECT_NE(limit.status().message().find("Member must have value greater than or equal to 1"),
            std::string::npos);
  auto type = Call("GetLogEvents",
                   R"({"logGroupName":"/aws/batch/job","logStreamName":"s","limit":"ten"})");
  EXPECT_NE(type.status().message().find("Member must be an integer"), std::string::npos);
  auto both = Call("GetLogEvents", R"({"logGroupName":"/aws/batch/job",
      "logGroupIdentifier":"/aws/batch/job","logStreamName":"s"})");
  EXPECT_EQ(ToLogsError(both.status()).type, "InvalidParameterException");
  auto neither = Call("GetLogEvents", R"({"logStreamName":"s"})");
  EXPECT_EQ(ToLogsError(neither.status()).type, "InvalidParameterException");
  auto token = Call("GetLogEvents",
                    R"({"logGroupName":"/aws/batch/job","logStreamName":"s","nextToken":"zzz"})");
  EXPECT_EQ(token.status().message(), "The specified nextToken is invalid.");
  // A well-formed token that points inside a line.
  auto inside = Call("GetLogEvents", R"({"logGroupName":"/aws/batch/job","logStreamName":"s",
      "nextToken":"f/00000000000000000003/s"})");
  EXPECT_EQ(inside.status().message(), "The specified nextToken is invalid.");
}

// ---------------------------------------------------------------- FilterLogEvents

TEST_F(LogsTest, FilterLogEventsInterleavesStreamsByTimestamp) {
  WriteEvents("a", {"a0", "a20"}, 20);  // kT0, kT0+20
  clock_.Set(kT0 + 10);
  WriteEvents("b", {"b10", "b30"}, 20);  // kT0+10, kT0+30
  clock_.Set(kT0 + 20);
  WriteEvents("c", {"c20"});
  auto r = MustCall("FilterLogEvents", R"({"logGroupName":"/aws/batch/job"})");
  EXPECT_EQ(EventMessages(r), (std::vector<std::string>{"a0", "b10", "a20", "c20", "b30"}));
  EXPECT_FALSE(r.contains("nextToken"));
  auto e = r.at("events").as_array()[1].as_object();
  EXPECT_EQ(Str(e, "logStreamName"), "b");
  EXPECT_EQ(*GetInt(e, "timestamp"), kT0 + 10);
  EXPECT_FALSE(Str(e, "eventId").empty());
  auto names = MustCall("FilterLogEvents",
                        R"({"logGroupName":"/aws/batch/job","logStreamNames":["a","c","gone"]})");
  EXPECT_EQ(EventMessages(names), (std::vector<std::string>{"a0", "a20", "c20"}));
  auto window = MustCall("FilterLogEvents", R"({"logGroupName":"/aws/batch/job","startTime":)" +
                                                std::to_string(kT0 + 10) + R"(,"endTime":)" +
                                                std::to_string(kT0 + 20) + "}");
  EXPECT_EQ(EventMessages(window), (std::vector<std::string>{"b10", "a20", "c20"}));
}

TEST_F(LogsTest, FilterLogEventsMatchesTermsPhrasesAlternativesAndExclusions) {
  WriteEvents("s", {"ERROR disk full on /dev/sda", "ERROR full disk", "WARN disk full",
                    "error disk full", "INFO ok"});
  auto filter = [&](const std::string& pattern) {
    json::object req{{"logGroupName", kGroup}, {"filterPattern", pattern}};
    auto r = service_.Call("FilterLogEvents", req);
    EXPECT_TRUE(r.ok()) << pattern << ": " << r.status().ToString();
    return r.ok() ? EventMessages(*r) : std::vector<std::string>{};
  };
  EXPECT_EQ(filter("ERROR disk"),
            (std::vector<std::string>{"ERROR disk full on /dev/sda", "ERROR full disk"}));
  EXPECT_EQ(filter("\"disk full\""),
            (std::vector<std::string>{"ERROR disk full on /dev/sda", "WARN disk full",
                                      "error disk full"}));
  EXPECT_EQ(filter("ERROR \"disk full\""), std::vector<std::string>{"ERROR disk full on /dev/sda"});
  EXPECT_EQ(filter("?WARN ?INFO"), (std::vector<std::string>{"WARN disk full", "INFO ok"}));
  EXPECT_EQ(filter("disk -ERROR"), (std::vector<std::string>{"WARN disk full", "error disk full"}));
  EXPECT_EQ(filter("").size(), 5u);
  EXPECT_EQ(filter("   ").size(), 5u);
  auto json_pattern =
      Call("FilterLogEvents", R"({"logGroupName":"/aws/batch/job","filterPattern":"{ $.a = 1 }"})");
  EXPECT_EQ(ToLogsError(json_pattern.status()).type, "InvalidParameterException");
  auto open_quote =
      Call("FilterLogEvents", R"({"logGroupName":"/aws/batch/job","filterPattern":"\"disk"})");
  EXPECT_EQ(ToLogsError(open_quote.status()).type, "InvalidParameterException");
}

TEST_F(LogsTest, FilterLogEventsPagesWithoutATokenOnTheLastPage) {
  WriteEvents("a", {"a1", "a2", "a3"});
  clock_.Set(kT0 + 5);
  WriteEvents("b", {"b1", "b2"});
  std::vector<std::string> seen;
  std::string token;
  int pages = 0;
  for (; pages < 10; ++pages) {
    std::string body = R"({"logGroupName":"/aws/batch/job","limit":2)";
    if (!token.empty()) body += R"(,"nextToken":")" + token + "\"";
    auto r = MustCall("FilterLogEvents", body + "}");
    for (auto& m : EventMessages(r)) seen.push_back(m);
    if (!r.contains("nextToken")) break;
    token = Str(r, "nextToken");
  }
  EXPECT_EQ(pages, 2);  // 2 + 2 + 1 events; the third page has no nextToken
  EXPECT_EQ(seen, (std::vector<std::string>{"a1", "b1", "a2", "b2", "a3"}));
  // Exactly `limit` events left: the page that holds them has no nextToken either.
  auto exact = MustCall("FilterLogEvents", R"({"logGroupName":"/aws/batch/job","limit":5})");
  EXPECT_EQ(EventMessages(exact).size(), 5u);
  EXPECT_FALSE(exact.contains("nextToken"));
}

TEST_F(LogsTest, FilterLogEventsEventIdsAreStableAcrossCallsAndNewStreams) {
  WriteEvents("m", {"x", "y"});
  auto ids = [&] {
    std::map<std::string, std::string> out;  // message -> eventId
    auto r = MustCall("FilterLogEvents", R"({"logGroupName":"/aws/batch/job"})");
    for (const auto& e : r.at("events").as_array()) {
      out[Str(e.as_object(), "message")] = Str(e.as_object(), "eventId");
    }
    return out;
  };
  auto first = ids();
  clock_.Set(kT0 - 1000);
  WriteEvents("a-new-stream-sorting-first", {"z"});
  auto second = ids();
  EXPECT_EQ(first.at("x"), second.at("x"));
  EXPECT_EQ(first.at("y"), second.at("y"));
  std::set<std::string> distinct;
  for (auto& [m, id] : second) {
    distinct.insert(id);
    EXPECT_TRUE(std::all_of(id.begin(), id.end(), ::isdigit)) << id;
  }
  EXPECT_EQ(distinct.size(), 3u);
}

TEST_F(LogsTest, FilterLogEventsRefusesStreamNamesTogetherWithAPrefix) {
  WriteEvents("s", {"x"});
  auto r = Call("FilterLogEvents", R"({"logGroupName":"/aws/batch/job","logStreamNames":["s"],
                                      "logStreamNamePrefix":"s"})");
  EXPECT_EQ(ToLogsError(r.status()).type, "InvalidParameterException");
  auto prefix =
      MustCall("FilterLogEvents", R"({"logGroupName":"/aws/batch/job","logStreamNamePrefix":"s"})");
  EXPECT_EQ(EventMessages(prefix), std::vector<std::string>{"x"});
}

// ---------------------------------------------------------------- Describe*

TEST_F(LogsTest, DescribeLogStreamsOrdersByNameOrLastEventTimeAndFiltersByPrefix) {
  WriteEvents("job/b", {"x"});  // oldest
  WriteEvents("job/a", {"x"});
  WriteEvents("other", {"x"});  // newest
  auto names = [](const json::object& r) {
    std::vector<std::string> out;
    for (const auto& s : r.at("logStreams").as_array()) {
      out.emplace_back(s.as_object().at("logStreamName").as_string());
    }
    return out;
  };
  auto by_name = MustCall("DescribeLogStreams", R"({"logGroupName":"/aws/batch/job"})");
  EXPECT_EQ(names(by_name), (std::vector<std::string>{"job/a", "job/b", "other"}));
  auto s = by_name.at("logStreams").as_array()[1].as_object();
  EXPECT_EQ(Str(s, "arn"),
            "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/batch/job:log-stream:job/b");
  EXPECT_EQ(*GetInt(s, "creationTime"), kT0);
  EXPECT_EQ(*GetInt(s, "firstEventTimestamp"), kT0);
  EXPECT_EQ(*GetInt(s, "lastEventTimestamp"), kT0);
  EXPECT_EQ(*GetInt(s, "lastIngestionTime"), kT0);
  EXPECT_GT(*GetInt(s, "storedBytes"), 0);
  EXPECT_EQ(names(MustCall("DescribeLogStreams",
                           R"({"logGroupName":"/aws/batch/job","logStreamNamePrefix":"job/"})")),
            (std::vector<std::string>{"job/a", "job/b"}));
  EXPECT_EQ(names(MustCall("DescribeLogStreams", R"({"logGroupName":"/aws/batch/job",
                "orderBy":"LastEventTime","descending":true})")),
            (std::vector<std::string>{"other", "job/a", "job/b"}));
  auto both = Call("DescribeLogStreams", R"({"logGroupName":"/aws/batch/job",
      "orderBy":"LastEventTime","logStreamNamePrefix":"job/"})");
  EXPECT_EQ(both.status().message(), "Cannot order by LastEventTime with a logStreamNamePrefix.");
  EXPECT_EQ(ToLogsError(both.status()).type, "InvalidParameterException");
  auto bad_order =
      Call("DescribeLogStreams", R"({"logGroupName":"/aws/batch/job","orderBy":"Size"})");
  EXPECT_NE(bad_order.status().message().find("enum value set"), std::string::npos);
}

TEST_F(LogsTest, DescribeLogStreamsPagesWithNextToken) {
  for (const char* n : {"s1", "s2", "s3"}) WriteEvents(n, {"x"});
  auto p1 = MustCall("DescribeLogStreams", R"({"logGroupName":"/aws/batch/job","limit":2})");
  ASSERT_EQ(p1.at("logStreams").as_array().size(), 2u);
  ASSERT_TRUE(p1.contains("nextToken"));
  auto p2 = MustCall("DescribeLogStreams", R"({"logGroupName":"/aws/batch/job","limit":2,
      "nextToken":")" + Str(p1, "nextToken") + "\"}");
  ASSERT_EQ(p2.at("logStreams").as_array().size(), 1u);
  EXPECT_EQ(Str(p2.at("logStreams").as_array()[0].as_object(), "logStreamName"), "s3");
  EXPECT_FALSE(p2.contains("nextToken"));
  auto limit = Call("DescribeLogStreams", R"({"logGroupName":"/aws/batch/job","limit":51})");
  EXPECT_EQ(ToLogsError(limit.status()).type, "InvalidParameterException");
}

TEST_F(LogsTest, DescribeLogGroupsListsGroupsWithArnsByPrefix) {
  WriteEvents("s", {"x"});
  WriteEvents("s", {"x"}, 10, "/custom/app");
  auto all = MustCall("DescribeLogGroups", "{}");
  auto groups = all.at("logGroups").as_array();
  ASSERT_EQ(groups.size(), 2u);
  auto g = groups[0].as_object();
  EXPECT_EQ(Str(g, "logGroupName"), "/aws/batch/job");
  EXPECT_EQ(Str(g, "arn"), "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/batch/job:*");
  EXPECT_EQ(Str(g, "logGroupArn"), "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/batch/job");
  EXPECT_EQ(*GetInt(g, "creationTime"), kT0);
  EXPECT_GT(*GetInt(g, "storedBytes"), 0);
  auto prefixed = MustCall("DescribeLogGroups", R"({"logGroupNamePrefix":"/custom"})");
  ASSERT_EQ(prefixed.at("logGroups").as_array().size(), 1u);
  auto p1 = MustCall("DescribeLogGroups", R"({"limit":1})");
  ASSERT_TRUE(p1.contains("nextToken"));
  auto p2 =
      MustCall("DescribeLogGroups", R"({"limit":1,"nextToken":")" + Str(p1, "nextToken") + "\"}");
  EXPECT_EQ(Str(p2.at("logGroups").as_array()[0].as_object(), "logGroupName"), "/custom/app");
  EXPECT_FALSE(p2.contains("nextToken"));
}

// ---------------------------------------------------------------- errors

TEST_F(LogsTest, UnknownGroupsAndStreamsAreResourceNotFound) {
  WriteEvents("s", {"x"});
  auto group = Call("GetLogEvents", R"({"logGroupName":"/nope","logStreamName":"s"})");
  LogsError e = ToLogsError(group.status());
  EXPECT_EQ(e.http_status, 400);
  EXPECT_EQ(e.type, "ResourceNotFoundException");
  EXPECT_EQ(e.message, "The specified log group does not exist.");
  auto stream = Call("GetLogEvents", R"({"logGroupName":"/aws/batch/job","logStreamName":"t"})");
  EXPECT_EQ(ToLogsError(stream.status()).message, "The specified log stream does not exist.");
  for (const char* op : {"FilterLogEvents", "DescribeLogStreams"}) {
    auto r = Call(op, R"({"logGroupName":"/nope"})");
    EXPECT_EQ(ToLogsError(r.status()).type, "ResourceNotFoundException") << op;
  }
}

TEST_F(LogsTest, UnsupportedOperationsAreUnknownOperationException) {
  auto r = Call("PutLogEvents", "{}");
  LogsError e = ToLogsError(r.status());
  EXPECT_EQ(e.http_status, 400);
  EXPECT_EQ(e.type, "UnknownOperationException");
  EXPECT_EQ(e.message.rfind("Drover does not support PutLogEvents", 0), 0u) << e.message;
  auto not_object = service_.Call("GetLogEvents", json::value(json::array{1, 2}));
  EXPECT_EQ(ToLogsError(not_object.status()).type, "InvalidParameterException");
}

TEST_F(LogsTest, ToLogsErrorMapsStatusCodes) {
  EXPECT_EQ(ToLogsError(Status::Server("disk")).type, "ServiceUnavailableException");
  EXPECT_EQ(ToLogsError(Status::Server("disk")).http_status, 500);
  EXPECT_EQ(ToLogsError(Status::Client("bad")).type, "InvalidParameterException");
  EXPECT_EQ(ToLogsError(Status::Client("bad")).message, "bad");
  EXPECT_EQ(ToLogsError(Status::NotFound("gone")).type, "ResourceNotFoundException");
  EXPECT_EQ(ToLogsError(Status::Throttled("slow")).type, "ThrottlingException");
}

}  // namespace
}  // namespace drover::logs
