// Resuming a run after a crash: the whole training state in one safetensors
// file (weights.h), RUN_DIR/checkpoint.safetensors, holding the tensors
//   model.<name>   the parameters, under the model's names
//   optim.<i>      Optimizers::state()[i], every rank's Muon buffers gathered
//   swa.<i>        the SWA sum (none before the first snapshot)
//   ema.<i>        the EMA weights (none without EMA)
// and string metadata: format=pgolf-checkpoint, version=1; step, agreed_step,
// stop_after, swa_count, data_file, data_offset (the token stream's position
// of the next batch), optim_tensors, swa_tensors, ema_tensors, world_size
// (decimal integers); train_ms, agreed_ms, first_step_ms (the schedule's
// clock, in the shortest decimal that reads back to the same double); qat,
// looped (0 or 1); device (cpu or cuda); config.<KEY> for every key of
// the run's configuration; inputs.<entry> for the data and tokenizer by
// content (fingerprint.h, input_identity); and checksum, the CRC-32 of every tensor (name,
// dtype, shape, bytes) and every other metadata entry, which load_checkpoint
// verifies last. The training step draws no random numbers (the
// initialisation is SEED's and is made again), so there is no RNG state.
#pragma once
#include <ATen/ATen.h>

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "pgolf/config/config.h"
#include "pgolf/data/data.h"
#include "pgolf/model/model.h"

namespace pgolf {

// A checkpoint that cannot be read or does not fit the run; the message
// names the file and the fault.
struct CheckpointError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// What a run needs to go on after its step `step` exactly as it would have.
struct TrainState {
  std::int64_t step = 0, agreed_step = 0, stop_after = -1, swa_count = 0;
  double train_ms = 0, agreed_ms = 0, first_step_ms = 0;
  bool qat = false, looped = false;
  TokenStream::Position data;
  std::vector<NamedTensor> weights;
  std::vector<at::Tensor> optimizer, swa_sum, ema;
  int world_size = 1;
  std::string device;                         // cpu or cuda
  std::map<std::string, std::string> config;  // KEY -> value, as get_config_value writes it
  std::map<std::string, std::string> inputs;  // data and tokenizer by content (input_identity); none in older files
  std::string path;                           // the file it was read from (for messages)
};

// RUN_DIR/checkpoint.safetensors
inline std::string checkpoint_path(const std::string& run_dir) { return run_dir + "/checkpoint.safetensors"; }

// Written atomically (io.h's AtomicFile: a temp file in the same folder,
// fsync, rename), so a crash while writing leaves the previous checkpoint.
void save_checkpoint(const std::string& path, const TrainState& state);

// Fails closed: a file that is not a pgolf checkpoint, lacks a metadata value
// or holds a malformed one, or lacks or has extra tensors is a CheckpointError
// naming the file and the fault; a damaged or truncated safetensors file is
// load_safetensors' error, which names them too.
TrainState load_checkpoint(const std::string& path);

// Throws CheckpointError unless a run of `cfg` on `world_size` processes on
// `device`, reading data and tokenizer of identity `inputs` (input_identity),
// continues `state` as its own run would have: the message names the file
// and every key that changes results and differs (both values), each shard
// or tokenizer whose content differs, or the world size or device. Data and
// tokenizer are compared by content, not by DATA_PATH and TOKENIZER_PATH
// (by path for a checkpoint without inputs).
void check_resumable(const TrainState& state, const Config& cfg, int world_size, const std::string& device,
                     const std::map<std::string, std::string>& inputs);

}  // namespace pgolf
