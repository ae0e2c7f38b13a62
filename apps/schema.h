// The experiment config: every key `deepaninet train` understands, with its default and doc.
// configs/README.md is generated from it (`deepaninet config-doc`) and a test keeps the two in
// sync.
#pragma once
#include "recsys/config.h"

namespace dan::apps {

recsys::Schema train_schema();

}  // namespace dan::apps
