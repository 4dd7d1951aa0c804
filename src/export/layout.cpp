#include "pgolf/export/layout.h"

#include <map>

#include "pgolf/export/artifact.h"

namespace pgolf {

const char* layout_name(Layout l) {
  switch (l) {
    case Layout::Plain: return "plain";
    case Layout::ByRole: return "by-role";
    case Layout::ByRoleCols: return "by-role+columns";
    case Layout::ByRoleZigzag: return "by-role+zigzag";
  }
  return "?";
}

std::vector<Layout> all_layouts() { return {Layout::Plain, Layout::ByRole, Layout::ByRoleCols, Layout::ByRoleZigzag}; }

namespace {

// "blocks.3.mlp.fc.weight" -> "mlp.fc.weight"; other names are their own role.
std::string role(const std::string& name) {
  if (name.rfind("blocks.", 0) != 0) return name;
  const auto dot = name.find('.', 7);
  return dot == std::string::npos ? name : name.substr(dot + 1);
}

std::string int_bytes(const QuantTensor& t, Layout l) {
  at::Tensor q = t.data.reshape({t.scale.numel(), -1});
  if (l == Layout::ByRoleCols) q = q.t().contiguous();
  if (l == Layout::ByRoleZigzag) {
    at::Tensor v = q.to(at::kShort);
    q = (v.abs() * 2 - v.lt(0).to(at::kShort)).to(at::kByte);
  }
  q = q.contiguous();
  return std::string(static_cast<const char*>(q.data_ptr()), static_cast<std::size_t>(q.numel()));
}

}  // namespace

std::string layout_payload(const std::vector<QuantTensor>& tensors, Layout l) {
  if (l == Layout::Plain) return serialize_tensors(tensors);
  std::map<std::string, std::string> groups;  // role -> integer bytes of its tensors, in model order
  std::vector<QuantTensor> rest;
  std::string scales;
  for (const auto& t : tensors) {
    if (t.plan.scheme != Scheme::IntRow) {
      rest.push_back(t);
      continue;
    }
    groups[role(t.name)] += int_bytes(t, l);
    scales.append(static_cast<const char*>(t.scale.data_ptr()), static_cast<std::size_t>(t.scale.numel() * 2));
  }
  std::string out = serialize_tensors(rest) + scales;
  for (const auto& [r, bytes] : groups) out += bytes;
  return out;
}

}  // namespace pgolf
