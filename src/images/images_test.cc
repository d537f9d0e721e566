#include "images/images.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace drover::images {
namespace {

namespace fs = std::filesystem;

TEST(ImageRefTest, ParsesNamesTagsAndRegistries) {
  EXPECT_EQ(ParseRef("busybox")->ToString(), "busybox:latest");
  EXPECT_EQ(ParseRef("busybox:1.36")->ToString(), "busybox:1.36");
  EXPECT_EQ(ParseRef("localhost:5000/tools/x")->ToString(), "localhost:5000/tools/x:latest");
  EXPECT_EQ(ParseRef("public.ecr.aws/docker/library/busybox:1.36")->name,
            "public.ecr.aws/docker/library/busybox");
  EXPECT_FALSE(ParseRef("").ok());
  EXPECT_FALSE(ParseRef("x:").ok());
}

TEST(ImageStoreTest, ImportListResolveRemove) {
  // Given a directory root filesystem, import makes it resolvable by name:tag and by a
  // registry path ending in that name; remove makes it go away.
  fs::path tmp = fs::temp_directory_path() / ("drover-images-" + std::to_string(getpid()));
  fs::remove_all(tmp);
  fs::create_directories(tmp / "src/bin");
  std::ofstream(tmp / "src/bin/hello") << "#!/bin/sh\necho hi\n";
  ImageStore store((tmp / "store").string());
  ASSERT_TRUE(store.Import(*ParseRef("tools/hello:1"), (tmp / "src").string()).ok());
  auto list = store.List();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].ref.ToString(), "tools/hello:1");
  EXPECT_GT((*list)[0].size_bytes, 0);
  auto rootfs = store.Resolve("tools/hello:1");
  ASSERT_TRUE(rootfs);
  EXPECT_TRUE(fs::exists(fs::path(*rootfs) / "bin/hello"));
  EXPECT_FALSE(store.Resolve("tools/hello:2"));
  EXPECT_FALSE(store.Resolve("hello:1"));
  ASSERT_TRUE(store.Import(*ParseRef("hello:1"), (tmp / "src").string()).ok());
  EXPECT_EQ(store.Resolve("123.dkr.ecr.us-east-1.amazonaws.com/team/hello:1"),
            store.Resolve("hello:1"));
  EXPECT_TRUE(store.Remove(*ParseRef("tools/hello:1")).ok());
  EXPECT_EQ(store.List()->size(), 1u);
  EXPECT_EQ(store.Resolve("tools/hello:1"), store.Resolve("hello:1"));  // by its last component
  EXPECT_EQ(store.Remove(*ParseRef("tools/hello:1")).code(), Code::kNotFound);
  EXPECT_FALSE(store.Import(*ParseRef("x:1"), (tmp / "missing.tar").string()).ok());
  fs::remove_all(tmp);
}

}  // namespace
}  // namespace drover::images
