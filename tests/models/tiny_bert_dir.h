// The tiny random-weight BERT of the gold fixture (tests/fixtures/bert/tiny, vocab 100) copied
// into a temporary HF directory together with a made-up vocab.txt, so that tests can load it
// with the tokenizer like a real checkpoint.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace dan::testing {

inline std::string tiny_bert_dir(const std::string& tag) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("dan_tiny_bert_" + tag + "_" + std::to_string(::getpid()));
  if (fs::exists(dir / "vocab.txt")) return dir.string();
  fs::create_directories(dir);
  const fs::path src = fs::path(DAN_FIXTURES_DIR) / "bert" / "tiny";
  fs::copy_file(src / "config.json", dir / "config.json", fs::copy_options::overwrite_existing);
  fs::copy_file(src / "model.safetensors", dir / "model.safetensors", fs::copy_options::overwrite_existing);
  std::ofstream v(dir / "vocab.txt");
  for (const char* t : {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}) v << t << "\n";
  const char* words[] = {"the", "a", "hero", "girl", "boy", "school", "war", "space", "robot", "magic",
                         "love", "fight", "city", "dark", "light", "time", "world", "team", "game", "music",
                         ".", ",", "!", "?", "##s", "##ing", "##ed", "in", "of", "and"};
  int n = 5;
  for (const char* w : words) {
    v << w << "\n";
    ++n;
  }
  for (; n < 100; ++n) v << "tok" << n << "\n";
  return dir.string();
}

}  // namespace dan::testing
