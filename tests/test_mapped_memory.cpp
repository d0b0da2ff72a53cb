// MappedMemory: zero until written, contents kept when it grows, pages resident only once
// written; and the KV cache built on it, whose unwritten positions cost no memory.
#include <gtest/gtest.h>

#include <numeric>
#include <utility>

#include "model/kv_cache.hpp"
#include "sys/memory.hpp"
#include "util/mapped_memory.hpp"

namespace {

constexpr size_t kMiB = size_t(1) << 20;

TEST(MappedMemory, ZeroUntilWrittenAndKeptWhenGrown) {
  lb::MappedMemory m(10000);
  ASSERT_EQ(m.size(), 10000u);
  for (size_t i = 0; i < m.size(); ++i) ASSERT_EQ(m.data()[i], 0) << "byte " << i;
  std::iota(m.data(), m.data() + m.size(), uint8_t(1));
  m.grow(5 * kMiB);
  ASSERT_EQ(m.size(), 5 * kMiB);
  for (size_t i = 0; i < 10000; ++i) ASSERT_EQ(m.data()[i], uint8_t(1 + i)) << "byte " << i;
  for (size_t i = 10000; i < m.size(); ++i) ASSERT_EQ(m.data()[i], 0) << "byte " << i;
  m.grow(100);  // never shrinks
  EXPECT_EQ(m.size(), 5 * kMiB);
}

TEST(MappedMemory, EmptyGrowsAndMovesHandOver) {
  lb::MappedMemory m;
  EXPECT_EQ(m.data(), nullptr);
  m.grow(4096);
  ASSERT_NE(m.data(), nullptr);
  m.data()[7] = 42;
  lb::MappedMemory n(std::move(m));
  EXPECT_EQ(m.data(), nullptr);
  EXPECT_EQ(m.size(), 0u);
  EXPECT_EQ(n.data()[7], 42);
  lb::MappedMemory o(8192, lb::MappedMemory::Pages::Huge);
  o = std::move(n);
  EXPECT_EQ(o.size(), 4096u);
  EXPECT_EQ(o.data()[7], 42);
}

TEST(MappedMemory, PagesAreResidentOnlyOnceWritten) {
  const uint64_t before = lb::resident_bytes();
  lb::MappedMemory m(256 * kMiB);
  m.data()[0] = 1;
  m.data()[m.size() - 1] = 1;
  const uint64_t mapped = lb::resident_bytes();
  EXPECT_LT(double(mapped) - double(before), 16.0 * kMiB)
      << "256 MiB mapped, two bytes written, yet the process grew by " << (mapped - before) / kMiB
      << " MiB";
  std::fill(m.data(), m.data() + 64 * kMiB, uint8_t(3));
  EXPECT_GT(double(lb::resident_bytes()) - double(before), 60.0 * kMiB);
}

TEST(KvCache, NewSequencesHoldOnlyThePagesTheirPositionsUse) {
  // 8 sequences of 32 layers, 5 positions each, in a context of 4096: their caches have room
  // for 256 positions (256 MiB in all), but only the written positions' pages are resident.
  lb::HParams hp;
  hp.n_layers = 32;
  hp.dim = 4096;
  hp.n_heads = 32;
  hp.n_kv_heads = 8;
  hp.head_dim = 128;
  lb::KvCache kv(hp, 0, hp.n_layers, 4096);
  const uint64_t before = lb::resident_bytes();
  for (uint64_t seq = 0; seq < 8; ++seq) {
    lb::SeqKv& s = kv.prepare(seq, 0, 5);
    for (size_t l = 0; l < size_t(hp.n_layers); ++l) {
      s.keys(l)[5 * kv.kv_dim() - 1] = 0x3c00;
      s.values(l)[0] = 0x3c00;
    }
  }
  EXPECT_EQ(kv.bytes(), 8 * 256 * kv.bytes_per_token());
  const double grew = double(lb::resident_bytes()) - double(before);
  EXPECT_LT(grew, 16.0 * kMiB) << "5 positions of 8 sequences made the process grow by "
                               << grew / kMiB << " MiB";
  // Growing past the first 256 positions keeps what was written.
  lb::SeqKv& s = kv.prepare(3, 5, 300);
  EXPECT_EQ(s.capacity, 512);
  EXPECT_EQ(s.keys(31)[5 * kv.kv_dim() - 1], 0x3c00);
  EXPECT_EQ(s.values(0)[0], 0x3c00);
  EXPECT_EQ(s.values(0)[1], 0);
}

}  // namespace
