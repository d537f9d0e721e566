// ImageStore: the host's local container images, as root filesystems on disk.
//
// There is no registry access here: images are imported from a root
// filesystem tarball, a directory, or an OCI image layout (unpacked with
// umoci), under DATA/images/<name>/<tag>/rootfs. A job whose image is in the
// store runs in a sandbox over it (exec/shim.h); see docs/api-compat.md.
//
// Thread-safety: methods only touch the filesystem; Resolve() may be called
// from any thread. Import/Remove are meant for the `drover image` CLI.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace drover::images {

struct ImageRef {
  std::string name, tag;  // "busybox", "latest"
  std::string ToString() const { return name + ":" + tag; }
};

// Splits "repo/name:tag" ("latest" when no tag; a digest "@sha256:..." is kept in the name).
Result<ImageRef> ParseRef(std::string_view ref);

struct ImageInfo {
  ImageRef ref;
  std::string rootfs;
  int64_t size_bytes = 0;
  int64_t imported_at_ms = 0;
};

class ImageStore {
 public:
  explicit ImageStore(std::string root) : root_(std::move(root)) {}

  // Imports `source` (a .tar/.tar.gz/.tgz root filesystem, a directory, or an OCI
  // image layout directory) as `ref`, replacing an image of the same name:tag.
  Status Import(const ImageRef& ref, const std::string& source) const;
  Result<std::vector<ImageInfo>> List() const;
  Status Remove(const ImageRef& ref) const;
  // The root filesystem for a job's image reference: an exact name:tag, else the
  // image whose name is the reference's last path component (so
  // "public.ecr.aws/docker/library/busybox:1.36" finds "busybox:1.36").
  std::optional<std::string> Resolve(std::string_view image) const;

 private:
  std::string Dir(const ImageRef& ref) const;
  std::string root_;
};

}  // namespace drover::images
