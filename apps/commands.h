// Subcommands of the deepaninet CLI, one per file (apps/<name>_cmd.cpp). Each takes the whole
// argv and parses its own options from argv[2] on; returns the process exit code.
#pragma once

namespace dan::apps {

int wmf_command(int argc, char** argv);
int train_command(int argc, char** argv);
int recommend_command(int argc, char** argv);
int pretrain_mlm_command(int argc, char** argv);

}  // namespace dan::apps
