// Status and Result<T>: how Drover reports errors across module boundaries.
//
// Thread-safety: Status and Result are plain values; distinct objects may be
// used from different threads without synchronization.
//
// Modelled on leveldb's Status: a code plus a human message. Code says where
// the error came from (the client, the server, authentication), so the API
// layer can map it onto AWS's exception names without string matching.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace drover {

enum class Code {
  kOk = 0,
  kClient,     // Bad input or a request that conflicts with state: ClientException (400).
  kNotFound,   // A named resource does not exist: ClientException (400) in Batch.
  kServer,     // Our fault (disk, SQLite, bug): ServerException (500).
  kThrottled,  // Overload: TooManyRequestsException (429).
  kAlreadyExists,  // A create found its key taken (e.g. by another server): ClientException (400).
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status Ok() { return Status(); }
  static Status Client(std::string msg) { return Status(Code::kClient, std::move(msg)); }
  static Status NotFound(std::string msg) { return Status(Code::kNotFound, std::move(msg)); }
  static Status Server(std::string msg) { return Status(Code::kServer, std::move(msg)); }
  static Status Throttled(std::string msg) { return Status(Code::kThrottled, std::move(msg)); }
  static Status AlreadyExists(std::string msg) {
    return Status(Code::kAlreadyExists, std::move(msg));
  }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string ToString() const;

 private:
  Status(Code code, std::string msg) : code_(code), message_(std::move(msg)) {}
  Code code_ = Code::kOk;
  std::string message_;
};

// Result<T> holds either a value or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

// Returns early from the enclosing function with the status when it is not OK.
#define DROVER_RETURN_IF_ERROR(expr)          \
  do {                                        \
    ::drover::Status _st = (expr);            \
    if (!_st.ok()) return _st;                \
  } while (0)

#define DROVER_CONCAT_INNER(a, b) a##b
#define DROVER_CONCAT(a, b) DROVER_CONCAT_INNER(a, b)
// Declares `lhs` from a Result, returning its status early when it failed.
#define DROVER_ASSIGN_OR_RETURN(lhs, expr) \
  DROVER_ASSIGN_OR_RETURN_IMPL(DROVER_CONCAT(_res_, __LINE__), lhs, expr)
#define DROVER_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()

}  // namespace drover
