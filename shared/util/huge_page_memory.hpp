#pragma once
// Anonymous memory mapped for one owner alone (it goes back to the kernel when the owner goes), in
// transparent huge pages where the kernel gives them: for buffers read from end to end over and
// over, like rearranged weight matrices, which decode streams once per token.
#include <cstddef>
#include <cstdint>

namespace lb {

class HugePageMemory {
 public:
  // Throws Error, naming the size, when the memory cannot be mapped.
  explicit HugePageMemory(size_t bytes);
  ~HugePageMemory();
  HugePageMemory(const HugePageMemory&) = delete;
  HugePageMemory& operator=(const HugePageMemory&) = delete;
  uint8_t* data() const { return data_; }
  size_t size() const { return bytes_; }

 private:
  uint8_t* data_;
  size_t bytes_;
};

}  // namespace lb
