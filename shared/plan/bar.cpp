#include "plan/planner.hpp"

namespace lb {

namespace {

char stage_letter(size_t i) {
  static const char kLetters[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  return i < sizeof kLetters - 1 ? kLetters[i] : '#';
}

}  // namespace

std::string render_plan_bar(const Plan& plan, int width) {
  const int n = plan.n_layers;
  if (width <= 0) width = n;
  // Stage boundaries scaled to the width and rounded, so the bar is exactly `width` long and each
  // stage's run is as close to its share of the layers as characters allow.
  auto column = [&](int layer) {
    return n == 0 ? 0
                  : static_cast<int>((static_cast<long long>(layer) * width * 2 + n) / (2LL * n));
  };
  std::string bar = "[";
  std::string legend;
  for (size_t i = 0; i < plan.stages.size(); ++i) {
    const PlanStage& st = plan.stages[i];
    bar.append(column(st.layer_end) - column(st.layer_begin), stage_letter(i));
    legend += "  ";
    legend += stage_letter(i);
    legend += "=" + st.node_id + " " + std::to_string(st.layer_begin);
    if (st.layer_end - st.layer_begin > 1) legend += "-" + std::to_string(st.layer_end - 1);
  }
  return bar + "]" + legend;
}

}  // namespace lb
