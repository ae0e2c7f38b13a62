// Helpers shared by config.cpp (Schema, Config) and config_load.cpp (YAML loading). Internal
// to recsys.
#pragma once

#include <optional>
#include <string>

#include "recsys/config.h"

namespace dan::recsys::detail {

// Checks a value of the right alternative against bounds / choices; returns the problem text
// (completed by the caller with "<where>: key '<key>': ").
std::optional<std::string> value_problem(const KeyInfo& k, const ConfigValue& v);

// True when `key` is `prefix` or lies under it ("wmf" covers "wmf" and "wmf.*", not "wmf2.*").
bool under_prefix(const std::string& key, const std::string& prefix);

// The top-level names kept for inheritance: "base" and "include".
bool is_reserved(const std::string& top);

}  // namespace dan::recsys::detail
