// A range's tensors are the only ones whose pages are touched: loading layers 10-19 of a model
// does not read layers 0-9, and dropping a range gives its memory back.
#include <memory>

#include "model/weights.hpp"
#include "synth/synth.hpp"
#include "sys/memory.hpp"
#include "test_support.hpp"

TEST(LazyLoad, LoadingLayers10To19TouchesOnlyThem) {
  lbtest::TempDir dir("lazy");
  const lb::SynthSpec spec = lb::synth_spec("llama", 512, 20, 8, 4, 1536, 512, lb::GgmlType::Q8_0);
  const std::string path = dir.file("lazy.gguf");
  lb::write_synthetic_model(spec, path);

  auto file = std::make_shared<lb::GgufFile>(path);
  const lb::ModelSizes sizes = lb::model_sizes(*file, lb::read_hparams(*file));
  uint64_t second_half = 0, first_half = 0;
  for (int l = 0; l < 10; ++l) first_half += sizes.layer_bytes[size_t(l)];
  for (int l = 10; l < 20; ++l) second_half += sizes.layer_bytes[size_t(l)];

  const uint64_t before = lb::resident_bytes();
  {
    lb::ModelWeights w(file, 10, 20);
    const uint64_t loaded = lb::resident_bytes();
    const double grew = double(loaded) - double(before);
    std::printf(
        "[lazy] layers 10-19 hold %.1f MiB (with head %.1f MiB); resident grew %.1f MiB; layers "
        "0-9 are %.1f MiB\n",
        second_half / 1048576.0, (second_half + sizes.head_bytes) / 1048576.0, grew / 1048576.0,
        first_half / 1048576.0);
    // What it holds must be resident, and nothing of layers 0-9 (an extra 1/4 of them would show).
    EXPECT_GE(grew, 0.98 * double(second_half + sizes.head_bytes));
    EXPECT_LT(grew, double(second_half + sizes.head_bytes) + 0.25 * double(first_half));
    EXPECT_EQ(w.bytes(), second_half + sizes.head_bytes);
  }
  // Dropping the range gives its pages back.
  const double after = double(lb::resident_bytes()) - double(before);
  EXPECT_LT(after, 0.1 * double(second_half)) << "released weights are still resident";
}
