// Configuration: every hyperparameter of docs/MODEL.md under the reference's env-var
// names, typed, with defaults equal to the 12-layer record configuration.
//
// Precedence (later wins): defaults < --config FILE (KEY=VALUE lines) <
// environment (only our own keys are read; train_gpt.py's other names are
// refused, python_names.h) < --set KEY=VALUE.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "pgolf/config/values.h"

namespace pgolf {

// The configuration in sections, one per component; each component receives
// only its own section, and only the wiring (the trainer, the commands) sees
// the whole Config. A field is its key's name in lower case
// (NUM_LAYERS -> model.num_layers); structured keys hold their parsed value (values.h).

// Data and the run folder.
struct RunConfig {
  std::string data_path = "./data/datasets/fineweb10B_sp1024";
  std::string tokenizer_path = "./data/tokenizers/fineweb_1024_bpe.model";
  bool tokenizer_check = true;  // data/tokenizer_check.h
  std::string run_id;
  std::string log_dir = "logs";
  std::int64_t seed = 1337;
};

// The model (docs/MODEL.md ("The model")).
struct ModelConfig {
  std::int64_t vocab_size = 1024;
  std::int64_t num_layers = 12;
  std::int64_t model_dim = 512;
  std::int64_t num_heads = 8;
  std::int64_t num_kv_heads = 4;
  std::int64_t mlp_mult = 3;
  MlpActivation mlp_activation = MlpActivation::Relu2;
  double mlp_leaky_slope = 0.5;
  bool tie_embeddings = true;
  double tied_embed_init_std = 0.005;
  double rope_base = 10000.0;
  double logit_softcap = 30.0;
  double qk_gain_init = 1.5;
  std::int64_t bigram_vocab_size = 2048;
  std::int64_t bigram_dim = 96;
  std::int64_t xsa_last_n = 0;
  bool attn_out_gate = false;    // sparse attention output gate (docs/PRESETS.md ("Options from the best record (1.0611)"))
  bool smear_bos_aware = false;  // BOS-aware SmearGate (docs/PRESETS.md ("Options from the best record (1.0611)"))
  bool skip_gates = false;       // gated U-Net skips (docs/PRESETS.md ("Options from the best record (1.0611)"))
  LoopRange loop_layers;         // depth recurrence: physical layers A..B looped (off by default)
  std::int64_t loop_repeats = 3;
  double loop_start_frac = 0.35;
  std::int64_t parallel_resid_from = -1;  // parallel residual lanes from this layer on (-1 = off)
  std::int64_t rope_dims = 0;      // rotated dims per head (0 = all of head_dim)
  std::int64_t rope_ntk_len = 0;   // NTK-scaled RoPE: length the tables were built for (0 = off)
  bool ln_scale = false;           // block i scales its norm outputs by 1/sqrt(i+1)
  bool smear_before_norm = true;   // SmearGate then RMSNorm (#76); 0: RMSNorm then SmearGate

  std::int64_t head_dim() const { return model_dim / num_heads; }
  std::int64_t rotated_dims() const { return rope_dims > 0 ? rope_dims : head_dim(); }
};

// The BOS-aware SmearGate and the attention output gate read the first 12 channels.
constexpr std::int64_t kSmearGateDims = 12;
constexpr std::int64_t kAttnGateDims = 12;

// The run's timeline: how long it is and the learning-rate multiplier over it (schedule.h).
struct ScheduleConfig {
  std::int64_t iterations = 20000;
  double max_wallclock_seconds = 600.0;
  std::int64_t warmdown_iters = 2000;
  LrSchedule lr_schedule = LrSchedule::Warmdown;
  double lr_hold_frac = 0.15;
  double min_lr = 0.0;  // floor of the LR multiplier
  // Not a key: the part of MAX_WALLCLOCK_SECONDS kept for the GPTQ
  // calibration after training (GPTQ_RESERVE_SECONDS when a plan uses GPTQ;
  // fill_derived), which reads training data and so counts as training.
  double calibration_reserve_seconds = 0.0;
  // The training loop's own cap in seconds (0: none): the wall clock less the reserve.
  double training_seconds() const {
    return max_wallclock_seconds > 0 ? max_wallclock_seconds - calibration_reserve_seconds : 0.0;
  }
};

// The training loop: batches, validation, logging, checkpoints.
struct TrainConfig {
  std::int64_t warmup_steps = 20;
  std::int64_t train_batch_tokens = 524288;
  std::int64_t train_seq_len = 1024;
  std::int64_t val_loss_every = 1000;
  std::int64_t val_batch_size = 524288;
  std::int64_t train_log_every = 200;
  std::string init_weights;  // .safetensors to start from instead of the random init
  std::int64_t checkpoint_every = 0;  // write RUN_DIR/checkpoint.safetensors every N steps (0 = off)
  double checkpoint_minutes = 0.0;    // ... or every M minutes of training time (0 = off)
};

// The optimisers (docs/MODEL.md ("The optimiser")).
struct OptimConfig {
  double matrix_lr = 0.025;
  double scalar_lr = 0.025;
  double tied_embed_lr = 0.035;
  double muon_momentum = 0.98;
  double muon_momentum_warmup_start = 0.92;
  std::int64_t muon_momentum_warmup_steps = 1500;
  std::int64_t muon_backend_steps = 5;
  double muon_wd = 0.04;
  NsSchedule muon_ns_coeffs;  // classic
  bool muon_row_norm = false;  // MuonEq-R
  double beta1 = 0.9;
  double beta2 = 0.95;
  double adam_eps = 1e-8;
  double adam_wd = 0.0;
  double tied_embed_wd = -1.0;  // < 0: ADAM_WD
  double scalar_wd = -1.0;      // < 0: ADAM_WD
  double tied_embed_beta1 = -1.0, tied_embed_beta2 = -1.0;  // < 0: BETA1, BETA2
  double scalar_beta1 = -1.0, scalar_beta2 = -1.0;          // < 0: BETA1, BETA2
  double grad_clip_norm = 0.3;
};

// Weight averaging (averaging.h).
struct AveragingConfig {
  bool swa_enabled = true;
  double swa_start_frac = 0.5;
  std::int64_t swa_every = 50;
  bool swa_add_final = true;
  SwaStepIndex swa_step_index = SwaStepIndex::Taken;
  bool ema_enabled = false;
  double ema_decay = 0.997;
};

// Late quantisation-aware training (docs/MODEL.md ("The optimiser")).
struct QatConfig {
  bool qat_enabled = false;
  double qat_start_frac = 0.0;
  std::optional<RowQuantizer> qat_quant;  // unset: each matrix's export quantiser
};

// The export (docs/MODEL.md ("The export")): the plan of every tensor class,
// pruning, GPTQ and LQER, the codec and fitting the budget.
struct ExportConfig {
  double prune_frac = 0.03;
  TensorPlan quant_mlp = parse_tensor_plan("int5,floor");
  TensorPlan quant_attn = parse_tensor_plan("int6,floor");
  TensorPlan quant_bigram_proj = parse_tensor_plan("int6,floor");
  TensorPlan quant_tok_emb = parse_tensor_plan("fp16");
  TensorPlan quant_bigram_embed = parse_tensor_plan("int6,floor");
  TensorPlan quant_other = parse_tensor_plan("int8,q=0.9999984,floor,sym");
  std::int64_t quant_passthrough_numel = 65536;
  bool quant_control_fp32_first = true;
  std::vector<std::string> fp16_keep_name_patterns;
  std::int64_t gptq_tokens = 262144;
  double gptq_reserve_seconds = 10.0;
  double gptq_damp = 0.01;
  std::int64_t lqer_tensors = 0;
  std::int64_t lqer_rank = 4;
  std::int64_t gptq_block = 128;
  Codec artifact_codec = Codec::Brotli;
  std::int64_t budget_bytes = 16000000;
  bool export_fit = true;
  std::int64_t fit_margin_bytes = 0;
  bool fit_spend_spare = false;
};

// Scoring (docs/MODEL.md ("The score: bits per byte")).
struct EvalConfig {
  std::int64_t eval_stride = 64;
  std::int64_t eval_batch_seqs = 32;
  std::int64_t eval_seq_len = 0;  // 0 = TRAIN_SEQ_LEN, filled in by load_config
  bool prequant_eval = true;
  double eval_budget_seconds = 600.0;
  bool override_recorded = false;  // a configuration may contradict a model file's record (record.h)
  std::string log_compat = "baseline";  // eval/score_lines.h
  std::int64_t eval_tokens_limit = 0;   // 0 = the whole validation split
};

// Score-first test-time training (ttt.h).
struct TttConfig {
  bool ttt_enabled = false;
  std::vector<AdapterSite> ttt_targets = {AdapterSite::Q, AdapterSite::K, AdapterSite::V,
                                          AdapterSite::O, AdapterSite::Mlp, AdapterSite::Head};
  std::int64_t ttt_rank = 80;
  double ttt_alpha = 144.0;
  std::int64_t ttt_chunk = 48;
  std::int64_t ttt_context = 0;  // 0 = EVAL_SEQ_LEN, filled in by load_config
  std::int64_t ttt_batch_docs = 64;
  double ttt_lr = 1e-4;
  double ttt_beta1 = 0.0;
  double ttt_beta2 = 0.99;
  double ttt_eps = 1e-10;
  double ttt_wd = 0.5;
  std::vector<std::int64_t> ttt_global_after;  // scored-document counts after which a global phase runs
  double ttt_global_lr = 1e-3;
  double ttt_global_momentum = 0.9;
  double ttt_global_clip = 1.0;
  std::int64_t ttt_global_batch_seqs = 8;
};

// Where and how the process runs.
struct RuntimeConfig {
  std::string device = "auto";    // auto, cpu or cuda
  std::int64_t num_threads = 0;   // 0 = every core this process may run on
  std::int64_t dist_timeout_seconds = 300;
  std::int64_t main_phase_timeout_seconds = 3600;
  std::string progress = "auto";  // auto, on or off: in-place progress lines on stdout
  bool fused_kernels = false;     // fused CUDA ops (fused.h)
  bool cuda_graphs = false;       // captured training step (step.h)
};

struct Config {
  RunConfig run;
  ModelConfig model;
  ScheduleConfig schedule;
  TrainConfig train;
  OptimConfig optim;
  AveragingConfig averaging;
  QatConfig qat;
  ExportConfig export_;  // `export` is a C++ keyword
  EvalConfig eval;
  TttConfig ttt;
  RuntimeConfig runtime;
};

// Any problem with configuration input; the message names the key (and the
// file and line, or the variable) and says how to fix it.
struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// One key: its name, the section it belongs to, and how its text is read
// into (set, throwing std::invalid_argument) and written from (get) its field.
struct ConfigKey {
  const char* name;   // env-var name, e.g. "MATRIX_LR"
  const char* group;  // section of --list output
  const char* type;   // "int", "float", "bool" or "string"
  void (*set)(Config& cfg, std::string_view text);
  std::string (*get)(const Config& cfg);
  const char* help;
};

const std::vector<ConfigKey>& config_keys();
const ConfigKey* find_config_key(std::string_view name);
// The key to use for `name`: the pgolf key of a train_gpt.py name
// (python_names.h), else the valid key with the smallest edit distance.
std::string closest_config_key(std::string_view name);

// Parses `value` into the field of `key`. `origin` says where it came from
// ("--set", "env", "file.env:12") and is part of any error message.
void set_config_value(Config& cfg, const ConfigKey& key, std::string_view value, const std::string& origin);
std::string get_config_value(const Config& cfg, const ConfigKey& key);
// Every key of `cfg` with its value (checkpoints and rank fingerprints record them).
std::map<std::string, std::string> config_values(const Config& cfg);
// Whether a key's value can change the trained weights or the artifact. Those
// that cannot say where the run's files go, what is logged when, how long a
// collective may wait, when checkpoints are written and whether the tokenizer
// is checked against the shards (TOKENIZER_CHECK: a run either stops or goes on
// with the same numbers).
bool changes_results(const ConfigKey& key);

// Applies one KEY=VALUE assignment; a train_gpt.py name is an error naming
// its pgolf key (python_names.h), any other unknown key one naming the closest key.
void apply_assignment(Config& cfg, std::string_view assignment, const std::string& origin,
                      std::map<std::string, std::string>* sources = nullptr);
// Applies a config file: KEY=VALUE lines, optional `export ` prefix, optional
// matching quotes around the value, `#` comments, blank lines. As in a shell,
// a `#` after white space starts a comment (`KEY=12 # note` sets 12), and
// inside quotes it is part of the value. --set and environment values are
// literal: a comment there is an error.
void apply_config_file(Config& cfg, const std::string& path, std::map<std::string, std::string>* sources = nullptr);

using Getenv = std::function<const char*(const char*)>;

struct ModelRecord;  // record.h

// Resolves the full precedence chain — defaults, then what a model file
// records (`recorded`, when scoring or exporting one), config files, the
// environment, --set — fills in the derived defaults (fill_derived) and
// validates the result. A train_gpt.py name in the environment
// (python_names.h) is an error naming the key to set instead. When `sources`
// is given it records, per key, where the final value came from.
Config load_config(const std::vector<std::string>& files, const std::vector<std::string>& sets,
                   const Getenv& getenv, std::map<std::string, std::string>* sources = nullptr,
                   const ModelRecord* recorded = nullptr);

// The keys whose 0 means "as another key": EVAL_SEQ_LEN (TRAIN_SEQ_LEN) and
// TTT_CONTEXT (EVAL_SEQ_LEN) get that key's value, once, so that every
// component reads its own section only.
void fill_derived(Config& cfg);

// Whether a storage plan of the export (QUANT_*) rounds with GPTQ, which
// calibrates on training data after the training loop (GPTQ_RESERVE_SECONDS).
bool uses_gptq(const ExportConfig& e);

// Ranges of every numeric key (sizes within practical limits, all within
// int32; positive finite floats where required), non-empty paths and the
// cross-field checks (dimensions divide, fractions in range, ...). Each error
// names the keys, their values and, given `sources` (as load_config records
// them), where each value came from.
void validate_config(const Config& cfg, const std::map<std::string, std::string>* sources = nullptr);

// The model section's checks alone, for a model built from a section that
// did not come through load_config.
void validate_model_config(const ModelConfig& model);

// KEY=VALUE lines for every key, readable back by apply_config_file.
std::string format_config(const Config& cfg, const std::map<std::string, std::string>* sources = nullptr);
// The documentation table: the keys (all, or the common ones --help shows)
// by section, with type, default and meaning.
enum class KeySelection { Common, All };
std::string describe_config_keys(KeySelection which = KeySelection::All);

// AdamW's per-group settings: < 0 means the shared value (docs/MODEL.md ("The optimiser")).
inline double tied_embed_wd(const OptimConfig& c) { return c.tied_embed_wd >= 0 ? c.tied_embed_wd : c.adam_wd; }
inline double scalar_wd(const OptimConfig& c) { return c.scalar_wd >= 0 ? c.scalar_wd : c.adam_wd; }

}  // namespace pgolf
