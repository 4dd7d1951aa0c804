// Byte layouts of the quantised payload, for measuring which one compresses
// best (`pgolf inspect --codecs`). The artifact stores the plain layout; the
// others are measured, not stored.
#pragma once
#include <string>
#include <vector>

#include "pgolf/export/quant.h"

namespace pgolf {

enum class Layout {
  Plain,       // serialize_tensors: tensor records in model order
  ByRole,      // the integer values of each role (attn.c_q, mlp.fc, ...) of all layers together, then the rest
  ByRoleCols,  // as ByRole, each matrix column by column (transposed)
  ByRoleZigzag,  // as ByRole, each integer v as zigzag 2|v| - (v < 0): sign in the low bit
};
const char* layout_name(Layout l);
std::vector<Layout> all_layouts();

// The payload's bytes in layout `l` (same information, same length up to record headers).
std::string layout_payload(const std::vector<QuantTensor>& tensors, Layout l);

}  // namespace pgolf
