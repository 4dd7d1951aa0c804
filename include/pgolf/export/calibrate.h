// Calibration for GPTQ: the Hessian of each linear matrix's layer-wise
// reconstruction error, H = (1/n) sum_x x x^T over the n input rows x the
// matrix saw while training tokens ran through the final model.
#pragma once
#include <ATen/ATen.h>

#include <map>
#include <string>
#include <vector>

#include "pgolf/model/model.h"

namespace pgolf {

// Runs `tokens` tokens of `files` (training shards only, never validation;
// read from the start of the stream; token ids checked against the model's
// VOCAB_SIZE) through the model in batches of
// `batch_seqs` sequences of `seq_len`, with no gradient. Returns H [in, in]
// (float32, on the model's device) for every parameter in `names`.
std::map<std::string, at::Tensor> input_hessians(GPT& model, const std::vector<std::string>& files, std::int64_t tokens,
                                                 std::int64_t seq_len, std::int64_t batch_seqs,
                                                 const std::vector<std::string>& names);

}  // namespace pgolf
