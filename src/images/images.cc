#include "images/images.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>

namespace drover::images {
namespace fs = std::filesystem;
namespace {

// Names are stored percent-free: '/' in a repository name becomes "%2F".
std::string Encode(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_') {
      out.push_back(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", static_cast<unsigned char>(c));
      out += buf;
    }
  }
  return out;
}

std::string Decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out.push_back(static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// Runs a command (no shell) and returns its exit status.
int Run(const std::vector<std::string>& argv) {
  pid_t pid = ::fork();
  if (pid == 0) {
    std::vector<char*> a;
    for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    ::execvp(a[0], a.data());
    ::_exit(127);
  }
  int status = 0;
  if (pid < 0 || ::waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int64_t DirSize(const fs::path& p) {
  int64_t total = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(p, fs::directory_options::skip_permission_denied, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    if (it->is_regular_file(ec) && !it->is_symlink(ec)) total += static_cast<int64_t>(it->file_size(ec));
  }
  return total;
}

}  // namespace

Result<ImageRef> ParseRef(std::string_view ref) {
  if (ref.empty()) return Status::Client("an image reference is empty");
  ImageRef r;
  size_t slash = ref.rfind('/');
  size_t colon = ref.rfind(':');
  if (ref.find('@') != std::string_view::npos || colon == std::string_view::npos ||
      (slash != std::string_view::npos && colon < slash)) {
    r.name = std::string(ref);
    r.tag = "latest";
  } else {
    r.name = std::string(ref.substr(0, colon));
    r.tag = std::string(ref.substr(colon + 1));
  }
  if (r.name.empty() || r.tag.empty()) {
    return Status::Client("image reference '" + std::string(ref) + "' is not NAME[:TAG]");
  }
  return r;
}

std::string ImageStore::Dir(const ImageRef& ref) const {
  return root_ + "/" + Encode(ref.name) + "/" + Encode(ref.tag);
}

Status ImageStore::Import(const ImageRef& ref, const std::string& source) const {
  std::error_code ec;
  if (!fs::exists(source, ec)) return Status::Client("no such file or directory: " + source);
  std::string dir = Dir(ref);
  std::string staging = dir + ".importing";
  fs::remove_all(staging, ec);
  fs::create_directories(staging + "/rootfs", ec);
  if (ec) return Status::Server("cannot create " + staging + ": " + ec.message());
  int rc;
  bool oci = fs::is_directory(source) && fs::exists(fs::path(source) / "oci-layout");
  if (oci) {
    // An OCI image layout: umoci unpacks the tag's layers into a bundle.
    fs::remove_all(staging + "/rootfs", ec);
    rc = Run({"umoci", "unpack", "--image", source + ":" + ref.tag, staging + "/bundle"});
    if (rc == 0) fs::rename(staging + "/bundle/rootfs", staging + "/rootfs", ec);
    if (rc != 0 || ec) {
      fs::remove_all(staging, ec);
      return Status::Client("umoci could not unpack " + source + ":" + ref.tag +
                            " (is umoci installed, and does the layout have that tag?)");
    }
  } else if (fs::is_directory(source)) {
    rc = Run({"cp", "-a", source + "/.", staging + "/rootfs/"});
  } else {
    rc = Run({"tar", "-xf", source, "-C", staging + "/rootfs", "--numeric-owner"});
  }
  if (rc != 0) {
    fs::remove_all(staging, ec);
    return Status::Client("cannot unpack " + source + " as a root filesystem");
  }
  std::ofstream(staging + "/imported") << std::to_string(
      std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count());
  ::chmod((staging + "/rootfs").c_str(), 0755);
  fs::remove_all(dir, ec);
  fs::create_directories(fs::path(dir).parent_path(), ec);
  fs::rename(staging, dir, ec);
  if (ec) return Status::Server("cannot install the image at " + dir + ": " + ec.message());
  return Status::Ok();
}

Result<std::vector<ImageInfo>> ImageStore::List() const {
  std::vector<ImageInfo> out;
  std::error_code ec;
  if (!fs::exists(root_, ec)) return out;
  for (const auto& name : fs::directory_iterator(root_, ec)) {
    if (!name.is_directory()) continue;
    for (const auto& tag : fs::directory_iterator(name.path(), ec)) {
      std::string t = tag.path().filename().string();
      if (!tag.is_directory() || t.ends_with(".importing")) continue;
      ImageInfo info;
      info.ref = ImageRef{Decode(name.path().filename().string()), Decode(t)};
      info.rootfs = (tag.path() / "rootfs").string();
      info.size_bytes = DirSize(info.rootfs);
      std::ifstream f(tag.path() / "imported");
      f >> info.imported_at_ms;
      out.push_back(std::move(info));
    }
  }
  std::sort(out.begin(), out.end(),
            [](const ImageInfo& a, const ImageInfo& b) { return a.ref.ToString() < b.ref.ToString(); });
  return out;
}

Status ImageStore::Remove(const ImageRef& ref) const {
  std::error_code ec;
  std::string dir = Dir(ref);
  if (!fs::exists(dir, ec)) return Status::NotFound("no image " + ref.ToString());
  fs::remove_all(dir, ec);
  fs::remove(fs::path(dir).parent_path(), ec);  // the name's directory, when it was the last tag
  return Status::Ok();
}

std::optional<std::string> ImageStore::Resolve(std::string_view image) const {
  auto ref = ParseRef(image);
  if (!ref.ok()) return std::nullopt;
  std::error_code ec;
  std::string exact = Dir(*ref) + "/rootfs";
  if (fs::is_directory(exact, ec)) return exact;
  size_t slash = ref->name.rfind('/');
  if (slash != std::string::npos) {
    std::string base = Dir(ImageRef{ref->name.substr(slash + 1), ref->tag}) + "/rootfs";
    if (fs::is_directory(base, ec)) return base;
  }
  return std::nullopt;
}

}  // namespace drover::images
