// Thread names: every long-lived thread of the server and the supervisor names
// itself, so that `top -H`, `ps -L`, perf and gdb show which part of Drover is
// busy (a name is at most 15 characters; longer ones are cut).
#pragma once

#include <string>
#include <string_view>

namespace drover {

// Names the calling thread.
void SetThreadName(std::string_view name);
// The calling thread's name ("" when it cannot be read).
std::string ThreadName();

}  // namespace drover
