// Thread policy. One knob, DAN_NUM_THREADS (default: all cores), sets both the OpenMP team
// size of our CPU kernels and OpenBLAS's thread count. Our OpenMP regions never call BLAS,
// and BLAS is never called from inside one, so the two pools never oversubscribe the cores.
#pragma once

namespace dan {

int num_threads();          // current setting
void set_num_threads(int n);  // n >= 1; applies to OpenMP and OpenBLAS

}  // namespace dan
