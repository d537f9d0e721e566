// drover-shim: runs one job attempt and outlives the server (see exec/shim.h).
#include <cstdio>

#include "exec/shim.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: drover-shim TASK_DIR (started by drover server)\n");
    return 2;
  }
  return drover::exec::RunShim(argv[1]);
}
