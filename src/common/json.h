// JSON values: Drover's documents are Boost.JSON values. This header is the
// one place that names the library, plus small helpers that return Status
// instead of throwing.
//
// Thread-safety: values are plain data; share them read-only or copy them.
#pragma once

#include <boost/json/array.hpp>
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

// Parses text; a syntax error is a client error with a readable message.
Result<json::value> ParseJson(std::string_view text);
std::string ToJson(const json::value& v);

// Typed lookups on an object: nullopt when absent or of another type.
std::optional<std::string_view> GetString(const json::object& o, std::string_view key);
std::optional<int64_t> GetInt(const json::object& o, std::string_view key);
std::optional<bool> GetBool(const json::object& o, std::string_view key);
const json::object* GetObject(const json::object& o, std::string_view key);
const json::array* GetArray(const json::object& o, std::string_view key);

}  // namespace drover
