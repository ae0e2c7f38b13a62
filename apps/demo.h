// `deepaninet demo`: the main job. Runs configs/demo.yaml (synthetic world by default) through
// the experiment runner, prints the cold-anime table (DeepAniNet vs random, popularity and
// content baselines) and side-by-side recommendations for a few query users.
#pragma once
#include <string>
#include <vector>

namespace dan::apps {

int demo_command(int argc, char** argv);

}  // namespace dan::apps
