// Weights in and out as .safetensors: an 8-byte little-endian header length,
// a JSON header {name: {dtype, shape, data_offsets}}, then raw little-endian
// tensor bytes. Readable by every tool that reads safetensors.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "pgolf/model/model.h"

namespace pgolf {

// Writes the tensors (copied to CPU, contiguous) atomically.
void save_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Reads every tensor onto the CPU. Any malformed header, unknown dtype, shape
// that disagrees with its byte range, or offset outside the file is an error
// naming the file and the tensor. Given `metadata`, also reads __metadata__
// into it, which must then be an object of strings if present.
std::vector<NamedTensor> load_safetensors(const std::string& path, std::map<std::string, std::string>* metadata = nullptr);

// Copies a weights file into the model; names and shapes must match exactly.
void load_weights(GPT& model, const std::string& path);
// The same for tensors read elsewhere; errors begin with `source` ("weights file 'F'").
void copy_weights(GPT& model, const std::vector<NamedTensor>& tensors, const std::string& source);

}  // namespace pgolf
