// Fitting the export to the budget: when the pruned, quantised and compressed
// weights plus the code exceed BUDGET_BYTES - FIT_MARGIN_BYTES, the export
// changes its choices — more pruning, one bit fewer for a tensor class, int8
// instead of fp16 embeddings — taking each time the change that loses the
// least accuracy per byte saved, until it fits.
//
// Cost of a choice: the squared error it adds to the weights, sum ||W - W'||^2
// over all tensors (W before pruning). Its size: predicted per tensor by
// compressing a 64 KB sample of its bytes with the artifact's codec, scaled by
// the ratio real/predicted of the last real compression; a real compression
// of the whole payload confirms the result.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "pgolf/core/codec.h"
#include "pgolf/export/quant.h"
#include "pgolf/core/run.h"

namespace pgolf {

// The export can not be made to fit; the message says by how much and what to change.
struct FitError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The budget section of the configuration.
struct FitOptions {
  bool enabled = true;             // EXPORT_FIT
  std::uint64_t budget = 16000000;  // BUDGET_BYTES
  std::uint64_t margin = 0;         // FIT_MARGIN_BYTES
  bool spend_spare = false;         // FIT_SPEND_SPARE: under the budget, spend the spare bytes
  std::uint64_t code_bytes = 0;     // counted against the budget with the artifact
  std::uint64_t target() const { return budget > margin + code_bytes ? budget - margin - code_bytes : 0; }
};
FitOptions fit_options(const ExportConfig& cfg, std::uint64_t code_bytes);

// One way of storing the model: the plans and the pruning fraction.
struct ExportChoice {
  QuantOptions quant;
  double prune_frac = 0;
};

// "PRUNE_FRAC=... QUANT_MLP=... ..." for every setting a choice holds.
std::string describe_choice(const ExportChoice& c);

// Estimate of a stored tensor's compressed size in bytes: `codec` applied to
// a sample of its bytes, scaled to the whole tensor.
double predicted_bytes(const QuantTensor& t, Codec codec);

struct FitResult {
  ExportChoice choice;
  std::vector<QuantTensor> tensors;  // quantised under `choice`
  std::string payload;               // serialised tensors
  std::string packed;                // the payload compressed (what the artifact stores)
  bool changed = false;              // the choice differs from the configured one
  double added_sse = 0;              // squared error of the final choice minus that of the configured one
};

// Prunes (copies of) `weights` and quantises them under `start` (GPTQ plans
// with the input Hessians of calibrate.h, keyed by parameter name); while the
// result is over opts.target() and fitting is enabled, applies the cheapest
// change (logged with its predicted bytes, added error and the margin left).
// The payload is compressed with `codec` (one real compression per
// confirmation); `header_bytes` is what the artifact adds to it. With
// opts.spend_spare an export under the target spends the spare bytes the
// other way (less pruning, one bit more, int8 -> fp16), most error removed
// per byte first. Throws FitError when no choice fits.
FitResult fit_export(const std::vector<NamedTensor>& weights, const std::map<std::string, at::Tensor>& hessians,
                     const ExportChoice& start, const FitOptions& opts, Codec codec, std::uint64_t header_bytes,
                     RunLog& log);

}  // namespace pgolf
