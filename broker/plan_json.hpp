#pragma once
// A plan as JSON, as `status`, `plan` and the rebalance commands show it.
#include <nlohmann/json.hpp>

#include "plan/planner.hpp"

namespace lb {

nlohmann::json plan_to_json(const Plan& p);

}  // namespace lb
