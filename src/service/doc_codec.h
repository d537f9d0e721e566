// DocCodec: how BatchService keeps job documents in memory. A job's AWS-shaped
// document is mostly what every job of its definition has (the container
// properties, ARNs, empty lists), so each is kept as zstd-compressed JSON text
// against a dictionary: the text of the first document packed with the same
// key (the job's definition). A queued job then costs about what makes it
// different from its siblings (its id, name and timestamps), not a JSON tree.
//
// Thread-safety: Pack and Unpack may be called from any thread (Load packs
// documents on several); dictionaries are made once per key and never change,
// and live as long as the codec (Packed values point to them).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace drover::service {

class DocCodec {
 public:
  struct Dict;
  // One packed document: 24 bytes plus its compressed text.
  struct Packed {
    std::unique_ptr<char[]> data;
    uint32_t size = 0;      // compressed bytes
    uint32_t raw_size = 0;  // the text's length
    const Dict* dict = nullptr;
    bool empty() const { return data == nullptr; }
  };

  DocCodec();
  ~DocCodec();
  DocCodec(const DocCodec&) = delete;
  DocCodec& operator=(const DocCodec&) = delete;

  // Packs `text`; the first text packed under `key` becomes that key's dictionary.
  Packed Pack(std::string_view key, std::string_view text);
  std::string Unpack(const Packed& p) const;
  size_t DictionaryCount() const;

 private:
  const Dict* DictFor(std::string_view key, std::string_view text);
  const Dict* DictLocked(std::string_view key, std::string_view text);
  const uint64_t id_;  // (a codec at a freed one's address is another codec)
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::unique_ptr<Dict>> dicts_;
};

}  // namespace drover::service
