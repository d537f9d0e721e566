#include "common/thread.h"

#include <pthread.h>

namespace drover {

void SetThreadName(std::string_view name) {
  std::string cut(name.substr(0, 15));  // the kernel keeps 15 characters and a NUL
  ::pthread_setname_np(::pthread_self(), cut.c_str());
}

std::string ThreadName() {
  char buf[16] = {};
  if (::pthread_getname_np(::pthread_self(), buf, sizeof buf) != 0) return "";
  return buf;
}

}  // namespace drover
