// KV caches moving with their layers: stages split one way run a few steps, the split changes,
// each stage keeps the layers it still holds, sends the ones it lost (encoded as on the wire) to
// their new owners, and the next step gives the same logits, bit for bit, as one process that
// never moved anything.
#include <cstring>
#include <memory>
#include <optional>

#include "model/forward.hpp"
#include "stage/kv_handover.hpp"
#include "synth/synth.hpp"
#include "test_support.hpp"

namespace {

using lb::KvCache;
using lb::KvIntake;
using lb::StepInput;
using lb::StepOutput;

constexpr int64_t kLayers = 6;
constexpr int64_t kCtx = 64;

std::shared_ptr<lb::GgufFile> model(const lbtest::TempDir& dir) {
  const std::string path = dir.file("handover.gguf");
  lb::write_synthetic_model(lb::synth_spec("llama", 64, kLayers, 4, 2, 128, 512, lb::GgmlType::F32),
                            path);
  return std::make_shared<lb::GgufFile>(path);
}

// Prompts for sequences 11, 22 and 33, then a decode step for each.
std::vector<StepInput> steps() {
  std::vector<StepInput> s(3);
  auto add = [](StepInput& in, uint64_t seq, int64_t pos, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
      in.seq.push_back(seq);
      in.pos.push_back(pos + i);
      in.tokens.push_back(int32_t((seq * 31 + uint64_t(pos + i) * 7) % 256));
      in.want_logits.push_back(1);
    }
  };
  add(s[0], 11, 0, 6);
  add(s[0], 22, 0, 5);
  add(s[1], 33, 0, 4);
  add(s[2], 11, 6, 1);
  add(s[2], 22, 5, 1);
  add(s[2], 33, 4, 1);
  return s;
}

const std::vector<lb::wire::KvHold> kHolds = {{11, 6}, {22, 5}, {33, 4}};

struct Sim {
  std::unique_ptr<lb::ModelWeights> w;
  std::unique_ptr<lb::RangeRunner> r;
};

class Chain {
 public:
  Chain(std::shared_ptr<lb::GgufFile> file, const std::vector<int64_t>& bounds)
      : file_(std::move(file)), pool_(2) {
    for (size_t i = 0; i + 1 < bounds.size(); ++i)
      stages_.push_back(make(bounds[i], bounds[i + 1]));
  }

  std::vector<float> step(const StepInput& step) {
    StepInput in = step;
    StepOutput out;
    bool first = true;
    for (Sim& st : stages_) {
      if (!st.r) continue;  // a stage left without layers
      if (!first) {
        in.tokens.clear();
        in.hidden = out.hidden;
      }
      st.r->step(in, out);
      first = false;
    }
    return out.logits;
  }

  // Moves stage i to bounds [b[i], b[i+1]) (an empty range leaves it without layers) the way
  // stages do on an assignment, routing each KV part to the new owner of its layer as the broker
  // does. Returns every stage's missing requests.
  std::vector<std::vector<uint64_t>> move_to(const std::vector<int64_t>& bounds,
                                             const std::vector<lb::wire::KvHold>& holds,
                                             const std::vector<uint64_t>& forget = {}) {
    std::vector<std::optional<KvCache>> old(stages_.size());
    std::vector<lb::wire::Assign> assigns(stages_.size());
    std::vector<Sim> next;
    for (size_t i = 0; i < stages_.size(); ++i) {
      if (stages_[i].r) old[i].emplace(std::move(stages_[i].r->kv()));
      for (uint64_t seq : forget) {
        if (old[i]) old[i]->erase(seq);
      }
      assigns[i].epoch = 2;
      assigns[i].begin = bounds[i];
      assigns[i].end = bounds[i + 1];
      assigns[i].kv = holds;
      next.push_back(bounds[i] < bounds[i + 1] ? make(bounds[i], bounds[i + 1]) : Sim{});
    }
    std::vector<KvIntake> intakes;
    for (size_t i = 0; i < stages_.size(); ++i) {
      intakes.emplace_back(assigns[i], old[i] ? &*old[i] : nullptr,
                           next[i].r ? &next[i].r->kv() : nullptr);
    }
    for (size_t i = 0; i < stages_.size(); ++i) {
      if (!old[i]) continue;
      lb::send_lost_layers(*old[i], assigns[i], [&](const lb::wire::KvPart& p) {
        const std::string bytes = lb::wire::encode(p);
        lb::wire::KvPart got;
        lb::wire::decode(lb::wire::Envelope::parse(bytes.data(), bytes.size(), {}), got);
        for (size_t j = 0; j < stages_.size(); ++j) {
          if (got.layer >= bounds[j] && got.layer < bounds[j + 1]) intakes[j].accept(got);
        }
      });
    }
    std::vector<std::vector<uint64_t>> missing;
    for (size_t i = 0; i < stages_.size(); ++i) {
      EXPECT_TRUE(intakes[i].complete()) << "stage " << i << " still waits for KV parts";
      missing.push_back(intakes[i].missing());
    }
    stages_ = std::move(next);
    return missing;
  }

 private:
  Sim make(int64_t begin, int64_t end) {
    Sim s;
    s.w = std::make_unique<lb::ModelWeights>(file_, begin, end);
    s.r = std::make_unique<lb::RangeRunner>(*s.w, pool_, kCtx);
    return s;
  }

  std::shared_ptr<lb::GgufFile> file_;
  lb::ThreadPool pool_;
  std::vector<Sim> stages_;
};

void expect_same(const std::vector<float>& a, const std::vector<float>& b, const char* what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  ASSERT_FALSE(a.empty()) << what;
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float))) << what;
}

std::vector<float> reference(const std::shared_ptr<lb::GgufFile>& file) {
  Chain one(file, {0, kLayers});
  const std::vector<StepInput> s = steps();
  one.step(s[0]);
  one.step(s[1]);
  return one.step(s[2]);
}

TEST(KvHandover, LayersMoveWithTheirCachesBitForBit) {
  lbtest::TempDir dir("kv-handover");
  auto file = model(dir);
  const std::vector<float> want = reference(file);
  const std::vector<StepInput> s = steps();

  // Every layer changes hands somewhere: the boundaries move both ways.
  const std::vector<std::vector<int64_t>> before = {{0, 2, 6}, {0, 4, 6}, {0, 1, 3, 6}};
  const std::vector<std::vector<int64_t>> after = {{0, 4, 6}, {0, 1, 6}, {0, 4, 5, 6}};
  for (size_t c = 0; c < before.size(); ++c) {
    Chain chain(file, before[c]);
    chain.step(s[0]);
    chain.step(s[1]);
    for (const auto& m : chain.move_to(after[c], kHolds)) EXPECT_TRUE(m.empty());
    expect_same(chain.step(s[2]), want, "after a move");
  }
}

TEST(KvHandover, AStageLeftWithoutLayersSendsThemAll) {
  lbtest::TempDir dir("kv-handover");
  auto file = model(dir);
  const std::vector<float> want = reference(file);
  const std::vector<StepInput> s = steps();
  Chain chain(file, {0, 2, 4, 6});
  chain.step(s[0]);
  chain.step(s[1]);
  // The middle stage is drained: its layers go to the first stage.
  for (const auto& m : chain.move_to({0, 4, 4, 6}, kHolds)) EXPECT_TRUE(m.empty());
  expect_same(chain.step(s[2]), want, "after a drain");
}

TEST(KvHandover, ACacheTheOldOwnerLacksIsReportedMissing) {
  lbtest::TempDir dir("kv-handover");
  auto file = model(dir);
  const std::vector<StepInput> s = steps();
  Chain chain(file, {0, 2, 6});
  chain.step(s[0]);
  chain.step(s[1]);
  // Sequence 22's cache is gone everywhere: the stage gaining layers 2-3 reports it missing (it
  // is then replayed); the stage keeping its layers has nothing to adopt it from either.
  const auto missing = chain.move_to({0, 4, 6}, kHolds, {22});
  EXPECT_EQ(missing[0], std::vector<uint64_t>{22});
  EXPECT_EQ(missing[1], std::vector<uint64_t>{22});
}

TEST(KvHandover, PartsThatDoNotFitAreRefused) {
  lbtest::TempDir dir("kv-handover");
  auto file = model(dir);
  lb::ThreadPool pool(1);
  lb::ModelWeights old_w(file, 0, 2), new_w(file, 0, 4);
  lb::RangeRunner old_r(old_w, pool, kCtx), new_r(new_w, pool, kCtx);
  lb::wire::Assign a;
  a.epoch = 3;
  a.begin = 0;
  a.end = 4;
  a.kv = {{11, 6}, {22, 5}};
  // The old range never ran sequence 11 or 22: both are missing at once, and parts for them
  // are ignored.
  KvIntake lost(a, &old_r.kv(), &new_r.kv());
  EXPECT_EQ(lost.missing(), (std::vector<uint64_t>{11, 22}));
  EXPECT_TRUE(lost.complete());

  // A stage that held nothing waits for every layer of every request.
  lb::RangeRunner fresh(new_w, pool, kCtx);
  KvIntake in(a, nullptr, &fresh.kv());
  EXPECT_FALSE(in.complete());
  const int64_t kv_dim = fresh.kv().kv_dim();
  lb::wire::KvPart p;
  p.epoch = 3;
  p.req = 11;
  p.layer = 2;
  p.total = 6;
  p.n = 6;
  std::vector<uint16_t> half(size_t(6 * kv_dim), 0x3c00);
  p.k = p.v = lb::wire::pack_halves(half.data(), half.size());
  lb::wire::KvPart wrong = p;
  wrong.epoch = 2;
  EXPECT_THROW(in.accept(wrong), lb::Error);
  wrong = p;
  wrong.layer = 4;  // not this stage's
  EXPECT_THROW(in.accept(wrong), lb::Error);
  wrong = p;
  wrong.req = 99;
  EXPECT_THROW(in.accept(wrong), lb::Error);
  in.accept(p);
  EXPECT_EQ(fresh.kv().at(11).keys(2)[0], 0x3c00);
  // Out of order (the layer is done): nobody waits for it any more.
  EXPECT_THROW(in.accept(p), lb::Error);
  // Sizes that do not match the positions make the request missing (it will be replayed).
  wrong = p;
  wrong.layer = 3;
  wrong.n = 5;
  EXPECT_THROW(in.accept(wrong), lb::Error);
  EXPECT_EQ(in.missing(), std::vector<uint64_t>{11});
  EXPECT_FALSE(in.complete());  // sequence 22 still waits
  EXPECT_EQ(in.received_bytes(), 2 * half.size() * sizeof(uint16_t));
  // Parts that never come: the stage stops waiting and the request is replayed.
  in.stop_waiting();
  EXPECT_TRUE(in.complete());
  EXPECT_EQ(in.missing(), (std::vector<uint64_t>{11, 22}));
}

}  // namespace
