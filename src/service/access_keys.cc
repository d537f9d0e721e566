// Access keys: the secrets SigV4 signatures are checked against. They are
// stored like any other resource (kind "access-key", keyed by key id) but are
// never reachable through the Batch API.
#include "service/batch_service.h"

namespace drover::service {

std::optional<std::string> BatchService::SecretFor(std::string_view access_key_id) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = resources_.find(std::string(access_key_id));
  if (it == resources_.end() || it->second.kind != kAccessKey) return std::nullopt;
  auto secret = GetString(it->second.doc, "secretAccessKey");
  if (!secret) return std::nullopt;
  return std::string(*secret);
}

size_t BatchService::AccessKeyCount() const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = order_.find(kAccessKey);
  return it == order_.end() ? 0 : it->second.size();
}

Result<AccessKey> BatchService::CreateAccessKey() {
  AccessKey key{"AKID" + ids_.Token(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"),
                ids_.Token(40, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")};
  DROVER_RETURN_IF_ERROR(ImportAccessKey(key));
  return key;
}

Status BatchService::ImportAccessKey(const AccessKey& key) {
  if (key.id.size() < 16 || key.id.size() > 128 || key.secret.size() < 16) {
    return Status::Client("access key ids need 16-128 characters and secrets at least 16");
  }
  for (char c : key.id) {
    if (!std::isalnum(static_cast<unsigned char>(c))) {
      return Status::Client("access key id '" + key.id + "' must be alphanumeric");
    }
  }
  store::WriteBatch batch;
  {
    std::lock_guard<std::mutex> l(mu_);
    json::object doc{{"secretAccessKey", key.secret}, {"createdAt", clock_.NowMillis()}};
    auto it = resources_.find(key.id);
    if (it != resources_.end()) {
      it->second.doc = std::move(doc);
    } else {
      Insert(std::string(kAccessKey), key.id, key.id, 0, std::move(doc));
    }
    const Resource& r = resources_.at(key.id);
    batch.puts.push_back(store::Record{r.kind, r.arn, r.name, 0, r.seq, ToJson(r.doc)});
  }
  return store_.WriteSync(std::move(batch));
}

}  // namespace drover::service
