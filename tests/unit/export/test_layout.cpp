// The measured payload layouts hold the same values as the stored one.
#include <gtest/gtest.h>

#include "helpers.h"
#include "pgolf/export/artifact.h"
#include "pgolf/export/layout.h"

using namespace pgolf;

TEST(Layout, EveryLayoutHoldsTheSameIntegersRearranged) {
  Config c = test::small_model(2, 128);
  c.export_.quant_passthrough_numel = 4096;
  GPT m(c.model, {});
  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  for (const auto& p : m.parameters())
    if (p.tensor.dim() == 2) p.tensor.detach().copy_(at::normal(0.0, 0.1, p.tensor.sizes(), gen, at::kFloat));
  const auto q = quantize_tensors(m.parameters(), quant_options(c.export_, c.qat));
  std::vector<QuantTensor> rest;
  std::int64_t ints = 0, rows = 0;
  at::Tensor histogram = at::zeros({256}, at::kLong);
  for (const auto& t : q) {
    if (t.plan.scheme != Scheme::IntRow) {
      rest.push_back(t);
      continue;
    }
    ints += t.data.numel();
    rows += t.scale.numel();
    histogram += at::bincount(t.data.to(at::kByte).to(at::kLong), {}, 256);
  }
  ASSERT_GT(ints, 0);
  const std::size_t grouped = serialize_tensors(rest).size() + 2 * rows + ints;
  for (Layout l : {Layout::ByRole, Layout::ByRoleCols}) {
    const std::string b = layout_payload(q, l);
    ASSERT_EQ(b.size(), grouped) << layout_name(l);
    // The same multiset of integer bytes after the non-integer records and scales.
    at::Tensor tail = at::from_blob(const_cast<char*>(b.data()) + (grouped - ints), {ints}, at::kByte).to(at::kLong);
    EXPECT_TRUE(at::equal(at::bincount(tail, {}, 256), histogram)) << layout_name(l);
  }
  const std::string z = layout_payload(q, Layout::ByRoleZigzag);
  ASSERT_EQ(z.size(), grouped);
  at::Tensor zz = at::from_blob(const_cast<char*>(z.data()) + (grouped - ints), {ints}, at::kByte).to(at::kLong);
  EXPECT_LT(zz.max().item<std::int64_t>(), 64);  // int6 at most: |v| <= 32 -> zigzag < 64
  EXPECT_EQ(layout_payload(q, Layout::Plain), serialize_tensors(q));
}
