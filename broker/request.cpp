#include "broker/broker.hpp"

namespace lb {

wire::Chunk make_chunk(const Request& r, int64_t pos, uint32_t n, bool sample) {
  wire::Chunk c;
  c.req = r.id;
  c.pos = pos;
  c.n = n;
  if (!sample) return c;
  wire::SampleSpec s;
  s.temp = r.params.temp;
  s.top_k = r.params.top_k;
  s.top_p = r.params.top_p;
  s.min_p = r.params.min_p;
  s.rep = r.params.rep;
  s.seed = r.params.seed;
  s.draw = r.generated.size();
  s.top = r.params.top;
  if (s.rep != 1.0f) {
    std::vector<int32_t> all = r.prompt;
    all.insert(all.end(), r.generated.begin(), r.generated.end());
    const size_t from = all.size() > wire::kRecentTokens ? all.size() - wire::kRecentTokens : 0;
    s.recent.assign(all.begin() + long(from), all.end());
  }
  c.sample = s;
  return c;
}

}  // namespace lb
