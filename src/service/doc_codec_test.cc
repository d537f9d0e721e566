#include "service/doc_codec.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace drover::service {
namespace {

// A job document as SubmitJob makes it (a definition with a few container properties).
std::string JobDoc(const std::string& id, const std::string& name, int64_t created) {
  return R"({"jobArn":"arn:aws:batch:us-east-1:123456789012:job/)" + id + R"(","jobName":")" +
         name + R"(","jobId":")" + id +
         R"(","jobQueue":"arn:aws:batch:us-east-1:123456789012:job-queue/q","status":"SUBMITTED","attempts":[],"createdAt":)" +
         std::to_string(created) +
         R"(,"dependsOn":[],"jobDefinition":"arn:aws:batch:us-east-1:123456789012:job-definition/d:1","parameters":{},"container":{"image":"busybox","command":["true"],"resourceRequirements":[{"type":"VCPU","value":"0.125"},{"type":"MEMORY","value":"16"}],"environment":[],"mountPoints":[],"volumes":[],"ulimits":[],"secrets":[],"networkInterfaces":[]},"tags":{},"isCancelled":false,"isTerminated":false})";
}

TEST(DocCodecTest, RoundTripsAndPacksSiblingsAgainstTheFirstDocument) {
  DocCodec codec;
  std::string first = JobDoc("0f8fad5b-d9cb-469f-a165-70867728950e", "first", 1763800000000);
  std::string second = JobDoc("7c9e6679-7425-40de-944b-e07fc1f90ae7", "second", 1763800000123);
  DocCodec::Packed a = codec.Pack("d:1", first);
  DocCodec::Packed b = codec.Pack("d:1", second);
  EXPECT_EQ(codec.Unpack(a), first);
  EXPECT_EQ(codec.Unpack(b), second);
  EXPECT_EQ(codec.DictionaryCount(), 1u);
  // What differs from the first document (two ids, a name, a time) is what a sibling costs.
  EXPECT_LT(b.size, second.size() / 6) << b.size << " of " << second.size();
  // Another key gets its own dictionary; the empty document packs too.
  DocCodec::Packed c = codec.Pack("other", "{}");
  EXPECT_EQ(codec.Unpack(c), "{}");
  EXPECT_EQ(codec.DictionaryCount(), 2u);
  EXPECT_EQ(codec.Unpack(DocCodec::Packed{}), "");
}

TEST(DocCodecTest, PacksFromSeveralThreads) {
  DocCodec codec;
  std::vector<std::vector<DocCodec::Packed>> packed(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        packed[t].push_back(codec.Pack("d:" + std::to_string(i % 3),
                                       JobDoc(std::to_string(t * 1000 + i), "n", i)));
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(codec.DictionaryCount(), 3u);
  for (int t = 0; t < 4; ++t) {
    for (int i = 0; i < 200; ++i) {
      EXPECT_EQ(codec.Unpack(packed[t][i]), JobDoc(std::to_string(t * 1000 + i), "n", i));
    }
  }
}

}  // namespace
}  // namespace drover::service
