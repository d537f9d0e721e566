// JSON values: Drover's documents are Boost.JSON values. This header is the
// one place that names the library, plus small helpers that return Status
// instead of throwing.
//
// Thread-safety: values are plain data; share them read-only or copy them.
#pragma once

#include <boost/json/array.hpp>
#include <boost/json/monotonic_resource.hpp>
#include <boost/json/object.hpp>
#include <boost/json/string.hpp>
#include <boost/json/value.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace drover {

namespace json = boost::json;

// Parses text; a syntax error is a client error with a readable message. The
// value's memory comes from `sp` (the default heap unless given, e.g. a
// json::monotonic_resource for a document that is read once and dropped).
Result<json::value> ParseJson(std::string_view text, json::storage_ptr sp = {});
std::string ToJson(const json::value& v);
// (An object or array is written as it is: through the overload above it would
// first be copied, deeply, into a value.)
std::string ToJson(const json::object& o);
std::string ToJson(const json::array& a);
// Whether `v` holds a number that is not finite. Boost.JSON parses a number past
// a double's range (1E5000) as infinity and writes it back as `Infinity`, which
// is not JSON: requests with one are refused where they come in (api/), so that
// no document or reply ever holds one.
bool HasNonFiniteNumber(const json::value& v);
// `s` with every byte that is not part of well-formed UTF-8 replaced by U+FFFD.
// ToJson() copies string bytes as they are, so text that did not come through
// ParseJson (a request path, a header) must pass here before it goes into a
// JSON reply, or the reply is not JSON.
std::string ValidUtf8(std::string_view s);

// Typed lookups on an object: nullopt when absent or of another type.
std::optional<std::string_view> GetString(const json::object& o, std::string_view key);
std::optional<int64_t> GetInt(const json::object& o, std::string_view key);
std::optional<bool> GetBool(const json::object& o, std::string_view key);
const json::object* GetObject(const json::object& o, std::string_view key);
const json::array* GetArray(const json::object& o, std::string_view key);

}  // namespace drover
