// How many threads compression may use by default: the hardware's threads, capped by OpenMP's
// limit (OMP_NUM_THREADS, omp_get_max_threads()), so that an explicit OMP_NUM_THREADS=1 (the
// ThreadSanitizer runs: libgomp is not instrumented) really means one thread everywhere, including
// the `num_threads(ctx.threads)` regions that would otherwise override it. Always >= 1.
#pragma once

namespace tsm {

int default_thread_count();

}  // namespace tsm
