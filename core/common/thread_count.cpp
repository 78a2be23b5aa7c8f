#include "common/thread_count.h"

#include <omp.h>

#include <algorithm>
#include <thread>

namespace tsm {

int default_thread_count() {
  const int hw = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  return std::min(hw, omp_get_max_threads());  // omp_get_max_threads() >= 1
}

}  // namespace tsm
