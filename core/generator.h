// Generator: the state of one Philox stream, (seed, offset). Each random op reserves the
// counters it consumes, so a run's random numbers depend only on the seed and op order,
// never on the device or the thread count. The state is saved in checkpoints.
#pragma once

#include <cstdint>

namespace dan {

struct GeneratorState {
  uint64_t seed = 0;
  uint64_t offset = 0;
};

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : state_{seed, 0} {}
  uint64_t seed() const { return state_.seed; }
  uint64_t offset() const { return state_.offset; }
  void manual_seed(uint64_t seed) { state_ = {seed, 0}; }
  GeneratorState state() const { return state_; }
  void set_state(GeneratorState s) { state_ = s; }
  // Returns the first counter of a fresh range of `blocks` Philox blocks.
  uint64_t reserve(uint64_t blocks) {
    const uint64_t o = state_.offset;
    state_.offset += blocks;
    return o;
  }

 private:
  GeneratorState state_;
};

// The process-wide default generator (seed 0 unless manual_seed is called).
Generator& default_generator();
void manual_seed(uint64_t seed);

}  // namespace dan
