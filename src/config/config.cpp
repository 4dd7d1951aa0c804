#include "pgolf/config/config.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <filesystem>
#include <sstream>
#include <tuple>

#include "pgolf/core/codec.h"
#include "pgolf/model/layers.h"
#include "pgolf/eval/lora.h"
#include "pgolf/optim/optim.h"
#include "pgolf/export/quant.h"
#include "pgolf/eval/ttt.h"

namespace pgolf {

const std::vector<ConfigKey>& config_keys() {
  using C = Config;
  static const std::vector<ConfigKey> keys = {
      {"DATA_PATH", "data", &C::data_path, "directory holding fineweb_train_*.bin and fineweb_val_*.bin shards"},
      {"TOKENIZER_PATH", "data", &C::tokenizer_path, "SentencePiece model used for the bits-per-byte tables"},
      {"RUN_ID", "data", &C::run_id, "name of the run folder under LOG_DIR (empty: date and time)"},
      {"LOG_DIR", "data", &C::log_dir, "folder that holds one subfolder of logs and outputs per run"},
      {"SEED", "data", &C::seed, "random seed for initialisation"},

      {"VOCAB_SIZE", "model", &C::vocab_size, "vocabulary size; must equal the tokenizer's"},
      {"NUM_LAYERS", "model", &C::num_layers, "transformer blocks (first half encoder, rest decoder of the U-Net)"},
      {"MODEL_DIM", "model", &C::model_dim, "residual width"},
      {"NUM_HEADS", "model", &C::num_heads, "query heads (head_dim = MODEL_DIM / NUM_HEADS)"},
      {"NUM_KV_HEADS", "model", &C::num_kv_heads, "key/value heads (grouped-query attention)"},
      {"ATTN_OUT_GATE", "model", &C::attn_out_gate,
       "sparse attention output gate (the 1.0611 record): head h's output times sigmoid(0.5 * W_g[h] . n[0:12]), "
       "n the block's normed attention input, W_g [heads, 12] zero-initialised (0.5 at init)"},
      {"SMEAR_BOS_AWARE", "model", &C::smear_bos_aware,
       "BOS-aware SmearGate (the 1.0611 record) in place of the per-channel one, then RMSNorm: "
       "e_t += lambda * sigmoid(W_s . e_t[0:12]) * e_(t-1) for t >= 1, except at BOS tokens; W_s [1, 12] and lambda zero-initialised"},
      {"SKIP_GATES", "model", &C::skip_gates,
       "gated U-Net skips (the 1.0611 record): x = lerp(w * skip, x, sigmoid(g)) with skip_gates g zero-initialised, "
       "instead of x + w * skip"},
      {"LOOP_LAYERS", "model", &C::loop_layers,
       "depth recurrence (the 1.0611 record): physical layers A-B (e.g. 3-5) run LOOP_REPEATS times in a row once "
       "LOOP_START_FRAC of the run has passed, and for every evaluation after; repeats share every weight; empty = off"},
      {"LOOP_REPEATS", "model", &C::loop_repeats, "depth recurrence: how many times the looped layers run"},
      {"LOOP_START_FRAC", "model", &C::loop_start_frac,
       "depth recurrence starts at this fraction of the wall clock (of ITERATIONS without a cap); 0 = from the start"},
      {"PARALLEL_RESID_FROM", "model", &C::parallel_resid_from,
       "parallel residuals (the 1.0611 record, 8): from this decoder layer on, attention and MLP read two lanes and "
       "write both through learned [2,2] weights; -1 = off"},
      {"MLP_MULT", "model", &C::mlp_mult, "MLP hidden width as a multiple of MODEL_DIM"},
      {"MLP_ACTIVATION", "model", &C::mlp_activation,
       "MLP activation: relu2 = relu(x)^2 (the seeds), leaky_relu2 = leaky_relu(x, MLP_LEAKY_SLOPE)^2 (the 1.0611 record)"},
      {"MLP_LEAKY_SLOPE", "model", &C::mlp_leaky_slope, "negative slope of leaky_relu2"},
      {"TIE_EMBEDDINGS", "model", &C::tie_embeddings, "output head shares tok_emb (only 1 is supported)"},
      {"TIED_EMBED_INIT_STD", "model", &C::tied_embed_init_std, "std of the normal init of tok_emb"},
      {"ROPE_BASE", "model", &C::rope_base, "RoPE frequency base"},
      {"LOGIT_SOFTCAP", "model", &C::logit_softcap, "logits become c*tanh(logits/c)"},
      {"QK_GAIN_INIT", "model", &C::qk_gain_init, "initial per-head query gain q_gain"},
      {"BIGRAM_VOCAB_SIZE", "model", &C::bigram_vocab_size, "BigramHash buckets (0 disables BigramHash)"},
      {"BIGRAM_DIM", "model", &C::bigram_dim, "BigramHash table width before its projection"},
      {"XSA_LAST_N", "model", &C::xsa_last_n, "apply XSA in the last N blocks (0 = off)"},
      {"ROPE_DIMS", "model", &C::rope_dims, "partial RoPE: rotate only the first N dims of each head (0 = all)"},
      {"ROPE_NTK_LEN", "model", &C::rope_ntk_len,
       "NTK-scaled RoPE: the length the tables were built for; longer sequences of length T use base*(T/N)^(d/(d-2)) (0 = off)"},
      {"LN_SCALE", "model", &C::ln_scale, "block i multiplies the normed attention and MLP inputs by 1/sqrt(i+1)"},
      {"SMEAR_BEFORE_NORM", "model", &C::smear_before_norm,
       "after the embedding: 1 = SmearGate then RMSNorm, 0 = RMSNorm then SmearGate"},

      {"ITERATIONS", "training", &C::iterations, "maximum training steps"},
      {"WARMUP_STEPS", "training", &C::warmup_steps, "kernel warm-up steps, undone before training starts"},
      {"WARMDOWN_ITERS", "training", &C::warmdown_iters, "length of the final linear LR decay, in steps"},
      {"LR_SCHEDULE", "training", &C::lr_schedule,
       "warmdown: 1, then linear to 0 over the last WARMDOWN_ITERS steps (in time under a cap), the seeds'; "
       "hold_decay: 1 until LR_HOLD_FRAC of the run (of the wall clock, else of ITERATIONS), then linear to 0 at its end"},
      {"LR_HOLD_FRAC", "training", &C::lr_hold_frac, "hold_decay: the fraction of the run at the full rate"},
      {"MIN_LR", "training", &C::min_lr, "floor of the LR multiplier, under either schedule (0 = none)"},
      {"TRAIN_BATCH_TOKENS", "training", &C::train_batch_tokens, "tokens per optimiser step over all ranks"},
      {"TRAIN_SEQ_LEN", "training", &C::train_seq_len, "training sequence length"},
      {"MAX_WALLCLOCK_SECONDS", "training", &C::max_wallclock_seconds, "training time cap in seconds (0 = none)"},
      {"VAL_LOSS_EVERY", "training", &C::val_loss_every, "run the standard evaluation every N steps (0 = only at the end)"},
      {"VAL_BATCH_SIZE", "training", &C::val_batch_size, "tokens per standard-evaluation batch over all ranks"},
      {"TRAIN_LOG_EVERY", "training", &C::train_log_every, "print a train_loss line every N steps"},
      {"INIT_WEIGHTS", "training", &C::init_weights, "start from this .safetensors file instead of the random init"},
      {"CHECKPOINT_EVERY", "training", &C::checkpoint_every,
       "write the run's full training state to RUN_DIR/checkpoint.safetensors every N steps, for `pgolf train --resume "
       "RUN_DIR` after a crash (0 = off)"},
      {"CHECKPOINT_MINUTES", "training", &C::checkpoint_minutes,
       "write the training state as CHECKPOINT_EVERY does whenever this many minutes of training time (the clock the "
       "ranks agree on) have passed since the last checkpoint (0 = off)"},

      {"MATRIX_LR", "optimiser", &C::matrix_lr, "Muon learning rate for block matrices"},
      {"SCALAR_LR", "optimiser", &C::scalar_lr, "AdamW learning rate for control tensors"},
      {"TIED_EMBED_LR", "optimiser", &C::tied_embed_lr, "AdamW learning rate for tok_emb and the bigram table"},
      {"MUON_MOMENTUM", "optimiser", &C::muon_momentum, "Muon momentum after warm-up"},
      {"MUON_MOMENTUM_WARMUP_START", "optimiser", &C::muon_momentum_warmup_start, "Muon momentum at step 0"},
      {"MUON_MOMENTUM_WARMUP_STEPS", "optimiser", &C::muon_momentum_warmup_steps, "steps of linear momentum warm-up"},
      {"MUON_BACKEND_STEPS", "optimiser", &C::muon_backend_steps, "Newton-Schulz iterations per Muon update"},
      {"MUON_WD", "optimiser", &C::muon_wd, "Muon decoupled weight decay (p *= 1 - lr*wd)"},
      {"MUON_NS_COEFFS", "optimiser", &C::muon_ns_coeffs,
       "Newton-Schulz coefficients: classic (MUON_BACKEND_STEPS x (3.4445,-4.775,2.0315)), polar_express (five tuned "
       "iterations, the 1.0611 record) or a,b,c;a,b,c;... one tuple per iteration"},
      {"MUON_ROW_NORM", "optimiser", &C::muon_row_norm,
       "MuonEq-R: divide each row of the Nesterov update by its L2 norm (floor 1e-7) before Newton-Schulz"},
      {"BETA1", "optimiser", &C::beta1, "Adam beta1"},
      {"BETA2", "optimiser", &C::beta2, "Adam beta2"},
      {"ADAM_EPS", "optimiser", &C::adam_eps, "Adam epsilon"},
      {"ADAM_WD", "optimiser", &C::adam_wd, "AdamW decoupled weight decay"},
      {"TIED_EMBED_WD", "optimiser", &C::tied_embed_wd, "AdamW weight decay of tok_emb and the bigram table (< 0: ADAM_WD)"},
      {"SCALAR_WD", "optimiser", &C::scalar_wd, "AdamW weight decay of the control tensors (< 0: ADAM_WD)"},
      {"TIED_EMBED_BETA1", "optimiser", &C::tied_embed_beta1, "Adam beta1 of tok_emb and the bigram table (< 0: BETA1)"},
      {"TIED_EMBED_BETA2", "optimiser", &C::tied_embed_beta2, "Adam beta2 of tok_emb and the bigram table (< 0: BETA2)"},
      {"SCALAR_BETA1", "optimiser", &C::scalar_beta1, "Adam beta1 of the control tensors (< 0: BETA1)"},
      {"SCALAR_BETA2", "optimiser", &C::scalar_beta2, "Adam beta2 of the control tensors (< 0: BETA2)"},
      {"GRAD_CLIP_NORM", "optimiser", &C::grad_clip_norm, "global gradient-norm clip (0 disables)"},

      {"SWA_ENABLED", "averaging", &C::swa_enabled, "average weights during the warm-down"},
      {"SWA_START_FRAC", "averaging", &C::swa_start_frac, "SWA collects once the LR multiplier is below this"},
      {"SWA_EVERY", "averaging", &C::swa_every, "SWA collects every N steps"},
      {"SWA_ADD_FINAL", "averaging", &C::swa_add_final, "SWA also adds the final weights to the average"},
      {"SWA_STEP_INDEX", "averaging", &C::swa_step_index,
       "which step count SWA_EVERY divides: done (steps done: after steps 50, 100, ...; #219, #286) or taken (the "
       "0-based index of the step just taken: after steps 51, 101, ...; #76)"},
      {"EMA_ENABLED", "averaging", &C::ema_enabled, "exponential moving average of weights (replaces SWA)"},
      {"EMA_DECAY", "averaging", &C::ema_decay, "EMA decay per step"},
      {"QAT_ENABLED", "averaging", &C::qat_enabled, "quantisation-aware training: matrices enter the forward pass fake-quantised"},
      {"QAT_START_FRAC", "averaging", &C::qat_start_frac,
       "QAT starts at this fraction of the wall clock (of ITERATIONS without a cap); 0 = from the first step"},
      {"QAT_QUANT", "averaging", &C::qat_quant,
       "QAT quantiser for every block matrix and bigram.proj (empty: each matrix's QUANT_MLP/QUANT_ATTN/QUANT_BIGRAM_PROJ)"},

      {"PRUNE_FRAC", "export", &C::prune_frac, "fraction of smallest |w| zeroed in each large matrix"},
      {"QUANT_MLP", "export", &C::quant_mlp,
       "MLP matrices: fp16, fp32 or int<B>[,q=<clip quantile>][,floor][,sym] (floor: scale >= 1/qmax; sym: range +-qmax)"},
      {"QUANT_ATTN", "export", &C::quant_attn, "attention matrices (same syntax as QUANT_MLP)"},
      {"QUANT_BIGRAM_PROJ", "export", &C::quant_bigram_proj, "bigram.proj when larger than QUANT_PASSTHROUGH_NUMEL"},
      {"QUANT_TOK_EMB", "export", &C::quant_tok_emb, "the token embedding tok_emb"},
      {"QUANT_BIGRAM_EMBED", "export", &C::quant_bigram_embed, "the BigramHash table bigram.embed"},
      {"QUANT_OTHER", "export", &C::quant_other, "any other large tensor"},
      {"QUANT_PASSTHROUGH_NUMEL", "export", &C::quant_passthrough_numel, "float tensors with at most this many entries are stored fp16"},
      {"QUANT_CONTROL_FP32_FIRST", "export", &C::quant_control_fp32_first,
       "control tensors are stored fp32 before the size rule applies (0: small ones become fp16)"},
      {"FP16_KEEP_NAME_PATTERNS", "export", &C::fp16_keep_name_patterns, "comma-separated name fragments kept as fp16"},
      {"GPTQ_TOKENS", "export", &C::gptq_tokens, "training tokens run through the final model to calibrate plans with the gptq option"},
      {"GPTQ_DAMP", "export", &C::gptq_damp, "GPTQ damping: added to the Hessian diagonal as a fraction of its mean"},
      {"GPTQ_BLOCK", "export", &C::gptq_block, "GPTQ columns per lazy-update block"},
      {"LQER_TENSORS", "export", &C::lqer_tensors,
       "give this many integer-quantised matrices (largest quantisation error first) a low-rank correction of their error, int2/int4 factors (0: none)"},
      {"LQER_RANK", "export", &C::lqer_rank, "rank of the LQER corrections"},
      {"ARTIFACT_CODEC", "export", &C::artifact_codec, "compressor of the artifact payload: brotli (quality 11, the smallest on pgolf's payloads), zstd (level 22, as the seeds) or xz (-9e)"},
      {"BUDGET_BYTES", "export", &C::budget_bytes, "artifact + code bytes allowed (the challenge: 16,000,000)"},
      {"EXPORT_FIT", "export", &C::export_fit,
       "over the budget, change pruning and QUANT_* plans (cheapest error per byte first) until the artifact fits; 0: keep them and only warn"},
      {"FIT_MARGIN_BYTES", "export", &C::fit_margin_bytes, "bytes of the budget the fitted export leaves unused"},
      {"FIT_SPEND_SPARE", "export", &C::fit_spend_spare,
       "under the budget, spend the spare bytes (less pruning, one bit more, int8 -> fp16) where they remove the most error"},

      {"EVAL_STRIDE", "evaluation", &C::eval_stride, "sliding-window stride"},
      {"EVAL_BATCH_SEQS", "evaluation", &C::eval_batch_seqs, "windows per sliding-evaluation batch"},
      {"EVAL_SEQ_LEN", "evaluation", &C::eval_seq_len, "sliding-window length (0 = TRAIN_SEQ_LEN)"},
      {"PREQUANT_EVAL", "evaluation", &C::prequant_eval, "also score the fp32 weights before export (shows the quantisation penalty)"},
      {"TTT_ENABLED", "evaluation", &C::ttt_enabled,
       "also score with score-first test-time training (per-document LoRA adapters, docs/MODEL.md): `pgolf eval` and the end of `pgolf train`"},
      {"TTT_TARGETS", "evaluation", &C::ttt_targets, "TTT: adapted sites, a subset of q,k,v,o,mlp,head"},
      {"TTT_RANK", "evaluation", &C::ttt_rank, "TTT: LoRA rank"},
      {"TTT_ALPHA", "evaluation", &C::ttt_alpha, "TTT: LoRA alpha (the delta is scaled by alpha / rank)"},
      {"TTT_CHUNK", "evaluation", &C::ttt_chunk, "TTT: targets scored, then trained on, per step of a document"},
      {"TTT_CONTEXT", "evaluation", &C::ttt_context, "TTT: window of the document's own past per chunk (0 = EVAL_SEQ_LEN)"},
      {"TTT_BATCH_DOCS", "evaluation", &C::ttt_batch_docs, "TTT: documents adapted together (each its own adapters)"},
      {"TTT_LR", "evaluation", &C::ttt_lr, "TTT: AdamW learning rate of the adapters"},
      {"TTT_BETA1", "evaluation", &C::ttt_beta1, "TTT: AdamW beta1"},
      {"TTT_BETA2", "evaluation", &C::ttt_beta2, "TTT: AdamW beta2"},
      {"TTT_EPS", "evaluation", &C::ttt_eps, "TTT: AdamW epsilon"},
      {"TTT_WD", "evaluation", &C::ttt_wd, "TTT: AdamW weight decay"},
      {"TTT_GLOBAL_AFTER", "evaluation", &C::ttt_global_after,
       "TTT: increasing counts of scored documents after which one epoch of full-model SGD runs over the documents scored so far (\"\" = none)"},
      {"TTT_GLOBAL_LR", "evaluation", &C::ttt_global_lr, "TTT global phases: SGD learning rate (cosine to 0 over the epoch)"},
      {"TTT_GLOBAL_MOMENTUM", "evaluation", &C::ttt_global_momentum, "TTT global phases: SGD momentum"},
      {"TTT_GLOBAL_CLIP", "evaluation", &C::ttt_global_clip, "TTT global phases: gradient-norm clip"},
      {"TTT_GLOBAL_BATCH_SEQS", "evaluation", &C::ttt_global_batch_seqs, "TTT global phases: EVAL_SEQ_LEN sequences per rank and step"},
      {"EVAL_BUDGET_SECONDS", "evaluation", &C::eval_budget_seconds,
       "TTT: wall-clock budget of the evaluation (0 = none); past it the remaining documents are scored without adaptation"},

      {"DEVICE", "runtime", &C::device, "auto, cpu or cuda"},
      {"NUM_THREADS", "runtime", &C::num_threads, "CPU threads for torch (0 = every core this process may use)"},
      {"PROGRESS", "runtime", &C::progress,
       "in-place progress lines on stdout (rewritten with \\r): auto = only on an interactive terminal and not under "
       "a launcher (mpirun, Slurm, torchrun variables); on; off. Log files never get them"},
      {"FUSED_KERNELS", "runtime", &C::fused_kernels,
       "CUDA: fused soft-capped cross-entropy (no float32 logits for the whole batch), q/k RMSNorm + RoPE + q_gain, relu^2 / LeakyReLU^2, "
       "each block's residual adds with their RMSNorm, the embedding's SmearGate + RMSNorm (not the BOS-aware gate) and XSA kernels; "
       "ignored, with a note in the log, elsewhere. Off until measured on a GPU"},
      {"CUDA_GRAPHS", "runtime", &C::cuda_graphs,
       "CUDA: record the training step (forward, backward, gradient all-reduce, clipping, optimisers) once per model "
       "mode into a CUDA graph and replay it, one launch per step instead of thousands; the first step of each mode "
       "runs eagerly, and if a capture fails the run says why and goes on eagerly. Ignored, with a note in the log, "
       "elsewhere. Off until measured on a GPU"},
      {"DIST_TIMEOUT_SECONDS", "runtime", &C::dist_timeout_seconds, "multi-process runs: how long a collective may wait for a peer before the run stops with an error"},
  };
  return keys;
}

const ConfigKey* find_config_key(std::string_view name) {
  for (const auto& k : config_keys())
    if (name == k.name) return &k;
  return nullptr;
}

namespace {

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t sub = prev[j - 1] + (std::toupper(a[i - 1]) == std::toupper(b[j - 1]) ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& ch : out) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return out;
}

[[noreturn]] void bad_value(const ConfigKey& key, std::string_view value, const std::string& origin, const char* expected) {
  throw ConfigError(origin + ": " + key.name + "='" + std::string(value) + "' is not " + expected);
}

void record(std::map<std::string, std::string>* sources, const char* name, const std::string& origin) {
  if (sources) (*sources)[name] = origin;
}

// Where a '#' after white space starts a comment, as in a shell: stripped in
// config files; --set and environment values are literal, so there it is an error.
std::size_t comment_start(std::string_view v) {
  for (std::size_t i = 1; i < v.size(); ++i)
    if (v[i] == '#' && std::isspace(static_cast<unsigned char>(v[i - 1]))) return i;
  return std::string_view::npos;
}

void reject_comment(std::string_view name, std::string_view value, const std::string& origin) {
  if (comment_start(value) != std::string_view::npos)
    throw ConfigError(origin + ": " + std::string(name) + "='" + std::string(value) +
                      "' holds a '#' comment; only --config files have comments: remove it");
}

}  // namespace

std::string closest_config_key(std::string_view name) {
  const ConfigKey* best = nullptr;
  std::size_t best_d = SIZE_MAX;
  for (const auto& k : config_keys()) {
    std::size_t d = edit_distance(name, k.name);
    if (d < best_d) best_d = d, best = &k;
  }
  return best->name;
}

const char* type_name(const ConfigKey& key) {
  static const char* names[] = {"int", "float", "bool", "string"};
  return names[key.field.index()];
}

void set_config_value(Config& cfg, const ConfigKey& key, std::string_view value, const std::string& origin) {
  std::visit(
      [&](auto member) {
        using T = std::decay_t<decltype(cfg.*member)>;
        if constexpr (std::is_same_v<T, std::int64_t>) {
          std::int64_t v = 0;
          auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
          if (value.empty() || ec != std::errc() || end != value.data() + value.size())
            bad_value(key, value, origin, "an integer");
          cfg.*member = v;
        } else if constexpr (std::is_same_v<T, double>) {
          std::string s(value);
          char* end = nullptr;
          errno = 0;
          double v = s.empty() ? 0.0 : std::strtod(s.c_str(), &end);
          if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(v)) bad_value(key, value, origin, "a finite number");
          // Underflow (1e-320 is subnormal, 1e-400 becomes 0) loses the value written.
          if (errno == ERANGE || std::fpclassify(v) == FP_SUBNORMAL)
            bad_value(key, value, origin, "a number within the range of a double (magnitude 0 or 2.3e-308 to 1.7e308)");
          cfg.*member = v;
        } else if constexpr (std::is_same_v<T, bool>) {
          std::string s = lower(value);
          if (s == "1" || s == "true" || s == "yes" || s == "on") cfg.*member = true;
          else if (s == "0" || s == "false" || s == "no" || s == "off") cfg.*member = false;
          else bad_value(key, value, origin, "a boolean (1/0, true/false, yes/no, on/off)");
        } else {
          cfg.*member = std::string(value);
        }
      },
      key.field);
}

std::string shortest_decimal(double v) {
  std::string s;
  for (int digits = 1; digits <= 17; ++digits) {
    std::ostringstream t;
    t.precision(digits);
    t << v;
    s = t.str();
    if (std::strtod(s.c_str(), nullptr) == v) break;
  }
  return s;
}

std::string get_config_value(const Config& cfg, const ConfigKey& key) {
  return std::visit(
      [&](auto member) -> std::string {
        using T = std::decay_t<decltype(cfg.*member)>;
        if constexpr (std::is_same_v<T, std::string>) {
          return cfg.*member;
        } else if constexpr (std::is_same_v<T, bool>) {
          return cfg.*member ? "1" : "0";
        } else if constexpr (std::is_same_v<T, double>) {
          return shortest_decimal(cfg.*member);
        } else {
          return std::to_string(cfg.*member);
        }
      },
      key.field);
}

void apply_assignment(Config& cfg, std::string_view assignment, const std::string& origin,
                      std::map<std::string, std::string>* sources) {
  auto eq = assignment.find('=');
  if (eq == std::string_view::npos)
    throw ConfigError(origin + ": expected KEY=VALUE, got '" + std::string(assignment) + "'");
  std::string_view name = trim(assignment.substr(0, eq));
  std::string_view value = trim(assignment.substr(eq + 1));
  const ConfigKey* key = find_config_key(name);
  if (!key)
    throw ConfigError(origin + ": unknown key '" + std::string(name) + "' (did you mean " + closest_config_key(name) +
                      "? `pgolf config --list` shows every key)");
  set_config_value(cfg, *key, value, origin);
  record(sources, key->name, origin);
}

namespace {

constexpr std::uintmax_t kMaxConfigFileBytes = 1 << 20;

// A config file's text: a regular file of at most 1 MiB of text (a UTF-8 BOM
// is dropped); anything else is refused naming the file and the fault.
std::string read_config_text(const std::string& path) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status)) throw ConfigError("cannot read config file '" + path + "' (check the --config path)");
  if (!std::filesystem::is_regular_file(status))
    throw ConfigError("config file '" + path + "' is not a regular file (a KEY=VALUE text file is expected)");
  if (std::filesystem::file_size(path) > kMaxConfigFileBytes)
    throw ConfigError("config file '" + path + "' is larger than 1 MiB: not a configuration (KEY=VALUE lines)");
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.eof() && in.fail()) throw ConfigError("cannot read config file '" + path + "'");
  if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) text.erase(0, 3);
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == 0 || (c < 0x20 && c != '\n' && c != '\r' && c != '\t'))
      throw ConfigError("config file '" + path + "' is not text: byte " + std::to_string(i) + " is 0x" +
                        std::string(1, "0123456789abcdef"[c >> 4]) + std::string(1, "0123456789abcdef"[c & 15]) +
                        " (a KEY=VALUE text file is expected)");
  }
  return text;
}

}  // namespace

void apply_config_file(Config& cfg, const std::string& path, std::map<std::string, std::string>* sources) {
  std::istringstream in(read_config_text(path));
  std::string line;
  for (int lineno = 1; std::getline(in, line); ++lineno) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::string_view s = trim(line);
    if (s.empty() || s.front() == '#') continue;
    if (s.substr(0, 7) == "export ") s = trim(s.substr(7));
    std::string origin = path + ":" + std::to_string(lineno);
    auto eq = s.find('=');
    if (eq == std::string_view::npos) throw ConfigError(origin + ": expected KEY=VALUE, got '" + std::string(s) + "'");
    std::string_view value = trim(s.substr(eq + 1));
    // A '#' after white space starts a comment; inside quotes it is part of the
    // value, and after the closing quote only a comment may follow.
    const char q = value.empty() ? 0 : value.front();
    if (q == '"' || q == '\'') {
      const std::size_t close = value.find(q, 1);
      if (close == std::string_view::npos) throw ConfigError(origin + ": the value " + std::string(value) + " lacks its closing quote");
      const std::string_view rest = trim(value.substr(close + 1));
      if (!rest.empty() && rest.front() != '#')
        throw ConfigError(origin + ": '" + std::string(rest) + "' follows the closing quote (a comment starts with '#')");
      value = value.substr(1, close - 1);
    } else if (const std::size_t hash = comment_start(value); hash != std::string_view::npos) {
      value = trim(value.substr(0, hash));
    }
    apply_assignment(cfg, std::string(s.substr(0, eq)) + "=" + std::string(value), origin, sources);
  }
}

Config load_config(const std::vector<std::string>& files, const std::vector<std::string>& sets, const Getenv& getenv,
                   std::map<std::string, std::string>* sources) {
  std::map<std::string, std::string> own;  // validation errors name the sources even when the caller wants none
  if (!sources) sources = &own;
  Config cfg;
  for (const auto& f : files) apply_config_file(cfg, f, sources);
  for (const auto& k : config_keys()) {
    if (const char* v = getenv(k.name)) {
      const std::string origin = std::string("environment variable ") + k.name;
      reject_comment(k.name, trim(v), origin);
      set_config_value(cfg, k, trim(v), origin);
      record(sources, k.name, "env");
    }
  }
  for (const auto& s : sets) {
    const std::string_view kv = s;
    if (const std::size_t eq = kv.find('='); eq != std::string_view::npos)
      reject_comment(trim(kv.substr(0, eq)), kv.substr(eq + 1), "--set " + s);
    apply_assignment(cfg, s, "--set " + s, sources);
  }
  validate_config(cfg, sources);
  return cfg;
}

void validate_config(const Config& c, const std::map<std::string, std::string>* sources) {
  // Every message ends with the keys it is about: their values and where each
  // came from (file:line, environment variable, --set or the default).
  auto shown = [&](std::initializer_list<const char*> keys) {
    std::string out;
    for (const char* k : keys) {
      out += (out.empty() ? "" : ", ") + std::string(k) + "=" + get_config_value(c, *find_config_key(k));
      if (!sources) continue;
      auto it = sources->find(k);
      out += it == sources->end() ? " by default"
             : it->second == "env" ? std::string(" from environment variable ") + k
                                   : " from " + it->second;
    }
    return out;
  };
  auto require = [&](bool ok, const std::string& msg, std::initializer_list<const char*> keys) {
    if (!ok) throw ConfigError("invalid configuration: " + msg + " (" + shown(keys) + ")");
  };
  // Integer sizes and counts: [lo, hi], hi a practical limit within int32.
  auto range = [&](const char* key, std::int64_t v, std::int64_t lo, std::int64_t hi = INT32_MAX) {
    const std::string low = lo == 1 ? "positive" : lo == 0 ? ">= 0" : ">= " + std::to_string(lo);
    require(v >= lo, std::string(key) + " must be " + low, {key});
    require(v <= hi, std::string(key) + " must be at most " + std::to_string(hi), {key});
  };
  auto positive = [&](const char* key, std::int64_t v) { range(key, v, 1); };
  auto at_least = [&](const char* key, double v, double lo, bool strict = false) {
    require(strict ? v > lo : v >= lo, std::string(key) + " must be " + (strict ? "> " : ">= ") + shortest_decimal(lo), {key});
  };
  auto fraction = [&](const char* key, double v) { require(v >= 0.0 && v <= 1.0, std::string(key) + " must be in [0, 1]", {key}); };
  // Every integer key but SEED fits in 32 bits; the checks below narrow that.
  for (const auto& k : config_keys())
    if (auto* m = std::get_if<std::int64_t Config::*>(&k.field); m && std::string_view(k.name) != "SEED")
      require(c.**m >= INT32_MIN && c.**m <= INT32_MAX, std::string(k.name) + " must fit in 32 bits", {k.name});
  for (const char* key : {"DATA_PATH", "TOKENIZER_PATH", "LOG_DIR"})
    require(!get_config_value(c, *find_config_key(key)).empty(), std::string(key) + " must not be empty", {key});
  positive("VOCAB_SIZE", c.vocab_size);
  require(c.vocab_size <= 65536, "VOCAB_SIZE must fit the uint16 shard format (<= 65536)", {"VOCAB_SIZE"});
  range("NUM_LAYERS", c.num_layers, 1, 1024);
  range("MODEL_DIM", c.model_dim, 1, 65536);
  range("NUM_HEADS", c.num_heads, 1, 65536);
  range("NUM_KV_HEADS", c.num_kv_heads, 1, 65536);
  range("MLP_MULT", c.mlp_mult, 1, 64);
  require(c.mlp_activation == "relu2" || c.mlp_activation == "leaky_relu2", "MLP_ACTIVATION must be relu2 or leaky_relu2",
          {"MLP_ACTIVATION"});
  fraction("MLP_LEAKY_SLOPE", c.mlp_leaky_slope);
  require(c.model_dim % c.num_heads == 0, "MODEL_DIM must be divisible by NUM_HEADS", {"MODEL_DIM", "NUM_HEADS"});
  require(head_dim(c) % 2 == 0, "head_dim = MODEL_DIM / NUM_HEADS must be even for RoPE", {"MODEL_DIM", "NUM_HEADS"});
  require(c.num_heads % c.num_kv_heads == 0, "NUM_HEADS must be divisible by NUM_KV_HEADS", {"NUM_HEADS", "NUM_KV_HEADS"});
  require(c.tie_embeddings, "TIE_EMBEDDINGS=0 (an untied output head) is not implemented", {"TIE_EMBEDDINGS"});
  at_least("TIED_EMBED_INIT_STD", c.tied_embed_init_std, 0);
  at_least("ROPE_BASE", c.rope_base, 1, true);
  at_least("LOGIT_SOFTCAP", c.logit_softcap, 0, true);
  range("BIGRAM_VOCAB_SIZE", c.bigram_vocab_size, 0, 1 << 24);
  require(c.bigram_vocab_size != 1, "BIGRAM_VOCAB_SIZE must be 0 (off) or at least 2", {"BIGRAM_VOCAB_SIZE"});
  if (c.bigram_vocab_size > 0) range("BIGRAM_DIM", c.bigram_dim, 1, 65536);
  range("XSA_LAST_N", c.xsa_last_n, 0, c.num_layers);
  if (!c.loop_layers.empty()) {
    std::int64_t a = -1, b = -1;
    try {
      std::tie(a, b) = parse_loop_layers(c.loop_layers);
    } catch (const std::invalid_argument& e) {
      require(false, e.what(), {"LOOP_LAYERS"});
    }
    require(b < c.num_layers, "LOOP_LAYERS must name layers below NUM_LAYERS", {"LOOP_LAYERS", "NUM_LAYERS"});
  }
  range("LOOP_REPEATS", c.loop_repeats, 1, 64);
  if (c.parallel_resid_from != -1) {
    range("PARALLEL_RESID_FROM", c.parallel_resid_from, 0, c.num_layers - 1);
    // The lanes start in the decoder: no encoder application (the first half,
    // looped or not) may be a parallel layer.
    std::vector<std::vector<std::int64_t>> orders = {block_order(c.num_layers, 0, -1, 1)};
    if (!c.loop_layers.empty()) {
      const auto [first, last] = parse_loop_layers(c.loop_layers);
      orders.push_back(block_order(c.num_layers, first, last, c.loop_repeats));
    }
    for (const auto& order : orders)
      for (std::size_t j = 0; j < order.size() / 2; ++j)
        require(order[j] < c.parallel_resid_from,
                "PARALLEL_RESID_FROM must be a decoder layer: layer " + std::to_string(order[j]) +
                    " runs in the encoder half of the block order",
                {"PARALLEL_RESID_FROM", "NUM_LAYERS", "LOOP_LAYERS"});
  }
  fraction("LOOP_START_FRAC", c.loop_start_frac);
  require(!c.smear_bos_aware || c.model_dim >= kSmearGateDims, "SMEAR_BOS_AWARE reads the first 12 channels: MODEL_DIM must be >= 12",
          {"SMEAR_BOS_AWARE", "MODEL_DIM"});
  require(!c.attn_out_gate || c.model_dim >= kAttnGateDims, "ATTN_OUT_GATE reads the first 12 channels: MODEL_DIM must be >= 12",
          {"ATTN_OUT_GATE", "MODEL_DIM"});
  require(c.rope_dims >= 0 && c.rope_dims <= head_dim(c) && c.rope_dims % 2 == 0,
          "ROPE_DIMS must be even and in [0, head_dim = " + std::to_string(head_dim(c)) + "]", {"ROPE_DIMS"});
  range("ROPE_NTK_LEN", c.rope_ntk_len, 0, 1 << 24);
  require(c.rope_ntk_len == 0 || rope_dims(c) > 2, "ROPE_NTK_LEN needs more than 2 rotated dims (its exponent is d/(d-2))",
          {"ROPE_NTK_LEN", "ROPE_DIMS"});
  range("ITERATIONS", c.iterations, 0);
  range("WARMUP_STEPS", c.warmup_steps, 0);
  range("WARMDOWN_ITERS", c.warmdown_iters, 0);
  require(c.lr_schedule == "warmdown" || c.lr_schedule == "hold_decay", "LR_SCHEDULE must be warmdown or hold_decay",
          {"LR_SCHEDULE"});
  require(c.lr_hold_frac >= 0 && c.lr_hold_frac < 1, "LR_HOLD_FRAC must be in [0, 1)", {"LR_HOLD_FRAC"});
  fraction("MIN_LR", c.min_lr);
  range("TRAIN_SEQ_LEN", c.train_seq_len, 1, 1 << 20);
  // docs/MODEL.md ("Data"): with grad_accum = 8 / world_size every rank's micro-batch is
  // TRAIN_BATCH_TOKENS / 8 tokens, which must be whole sequences.
  require(c.train_batch_tokens > 0 && c.train_batch_tokens % (8 * c.train_seq_len) == 0,
          "TRAIN_BATCH_TOKENS must be a positive multiple of 8 * TRAIN_SEQ_LEN = " + std::to_string(8 * c.train_seq_len),
          {"TRAIN_BATCH_TOKENS", "TRAIN_SEQ_LEN"});
  at_least("MAX_WALLCLOCK_SECONDS", c.max_wallclock_seconds, 0);
  range("VAL_LOSS_EVERY", c.val_loss_every, 0);
  positive("VAL_BATCH_SIZE", c.val_batch_size);
  positive("TRAIN_LOG_EVERY", c.train_log_every);
  range("CHECKPOINT_EVERY", c.checkpoint_every, 0);
  at_least("CHECKPOINT_MINUTES", c.checkpoint_minutes, 0);
  at_least("MATRIX_LR", c.matrix_lr, 0);
  at_least("SCALAR_LR", c.scalar_lr, 0);
  at_least("TIED_EMBED_LR", c.tied_embed_lr, 0);
  fraction("MUON_MOMENTUM", c.muon_momentum);
  fraction("MUON_MOMENTUM_WARMUP_START", c.muon_momentum_warmup_start);
  range("MUON_MOMENTUM_WARMUP_STEPS", c.muon_momentum_warmup_steps, 0);
  range("MUON_BACKEND_STEPS", c.muon_backend_steps, 1, 100);
  at_least("MUON_WD", c.muon_wd, 0);
  try {
    parse_ns_coefficients(c.muon_ns_coeffs, c.muon_backend_steps);
  } catch (const std::invalid_argument& e) {
    require(false, e.what(), {"MUON_NS_COEFFS"});
  }
  require(c.beta1 >= 0 && c.beta1 < 1, "BETA1 must be in [0, 1)", {"BETA1"});
  require(c.beta2 >= 0 && c.beta2 < 1, "BETA2 must be in [0, 1)", {"BETA2"});
  auto group_beta = [&](const char* key, double v) {
    require(v < 1, std::string(key) + " must be below 1 (< 0: the shared BETA1/BETA2)", {key});
  };
  group_beta("TIED_EMBED_BETA1", c.tied_embed_beta1);
  group_beta("TIED_EMBED_BETA2", c.tied_embed_beta2);
  group_beta("SCALAR_BETA1", c.scalar_beta1);
  group_beta("SCALAR_BETA2", c.scalar_beta2);
  at_least("ADAM_EPS", c.adam_eps, 0, true);
  at_least("ADAM_WD", c.adam_wd, 0);
  at_least("GRAD_CLIP_NORM", c.grad_clip_norm, 0);
  fraction("SWA_START_FRAC", c.swa_start_frac);
  positive("SWA_EVERY", c.swa_every);
  require(c.swa_step_index == "done" || c.swa_step_index == "taken", "SWA_STEP_INDEX must be done or taken",
          {"SWA_STEP_INDEX"});
  fraction("EMA_DECAY", c.ema_decay);
  fraction("QAT_START_FRAC", c.qat_start_frac);
  fraction("PRUNE_FRAC", c.prune_frac);
  range("QUANT_PASSTHROUGH_NUMEL", c.quant_passthrough_numel, 0);
  positive("BUDGET_BYTES", c.budget_bytes);
  require(parse_codec(c.artifact_codec).has_value(), "ARTIFACT_CODEC must be zstd, xz or brotli", {"ARTIFACT_CODEC"});
  positive("GPTQ_TOKENS", c.gptq_tokens);
  range("GPTQ_BLOCK", c.gptq_block, 1, 65536);
  at_least("GPTQ_DAMP", c.gptq_damp, 0);
  range("LQER_TENSORS", c.lqer_tensors, 0, 4096);
  range("LQER_RANK", c.lqer_rank, 1, 64);
  require(c.fit_margin_bytes >= 0 && c.fit_margin_bytes < c.budget_bytes, "FIT_MARGIN_BYTES must be in [0, BUDGET_BYTES)",
          {"FIT_MARGIN_BYTES", "BUDGET_BYTES"});
  // Each tensor class's plan on its own, so that the error names its source; then QAT_QUANT.
  for (const PlanClass& pc : plan_classes()) {
    try {
      parse_tensor_plan(get_config_value(c, *find_config_key(pc.key)), pc.key);
    } catch (const ConfigError& e) {
      require(false, e.what(), {pc.key});
    }
  }
  try {
    quant_options(c);
  } catch (const ConfigError& e) {
    require(false, e.what(), {"QAT_QUANT"});
  }
  range("EVAL_BATCH_SEQS", c.eval_batch_seqs, 1);
  range("EVAL_SEQ_LEN", c.eval_seq_len, 0, 1 << 20);  // 0 means TRAIN_SEQ_LEN
  require(c.eval_stride > 0 && c.eval_stride <= eval_seq_len(c), "EVAL_STRIDE must be in [1, EVAL_SEQ_LEN]",
          {"EVAL_STRIDE", "EVAL_SEQ_LEN", "TRAIN_SEQ_LEN"});
  try {
    parse_adapter_sites(c.ttt_targets);
    parse_doc_counts(c.ttt_global_after);
  } catch (const std::invalid_argument& e) {
    require(false, e.what(), {"TTT_TARGETS", "TTT_GLOBAL_AFTER"});
  }
  range("TTT_RANK", c.ttt_rank, 1, 4096);
  at_least("TTT_ALPHA", c.ttt_alpha, 0, true);
  range("TTT_CHUNK", c.ttt_chunk, 1, 1 << 20);
  range("TTT_CONTEXT", c.ttt_context, 0, 1 << 20);
  require(!c.ttt_enabled || ttt_context(c) >= c.ttt_chunk, "TTT_CONTEXT must hold at least one chunk (TTT_CHUNK)",
          {"TTT_CONTEXT", "TTT_CHUNK", "EVAL_SEQ_LEN", "TRAIN_SEQ_LEN"});
  range("TTT_BATCH_DOCS", c.ttt_batch_docs, 1, 1 << 16);
  at_least("TTT_LR", c.ttt_lr, 0);
  require(c.ttt_beta1 >= 0 && c.ttt_beta1 < 1, "TTT_BETA1 must be in [0, 1)", {"TTT_BETA1"});
  require(c.ttt_beta2 >= 0 && c.ttt_beta2 < 1, "TTT_BETA2 must be in [0, 1)", {"TTT_BETA2"});
  at_least("TTT_EPS", c.ttt_eps, 0, true);
  at_least("TTT_WD", c.ttt_wd, 0);
  at_least("TTT_GLOBAL_LR", c.ttt_global_lr, 0);
  fraction("TTT_GLOBAL_MOMENTUM", c.ttt_global_momentum);
  at_least("TTT_GLOBAL_CLIP", c.ttt_global_clip, 0);
  range("TTT_GLOBAL_BATCH_SEQS", c.ttt_global_batch_seqs, 1, 1 << 16);
  at_least("EVAL_BUDGET_SECONDS", c.eval_budget_seconds, 0);
  require(c.device == "auto" || c.device == "cpu" || c.device == "cuda", "DEVICE must be auto, cpu or cuda", {"DEVICE"});
  require(c.progress == "auto" || c.progress == "on" || c.progress == "off", "PROGRESS must be auto, on or off", {"PROGRESS"});
  range("NUM_THREADS", c.num_threads, 0, 4096);
  positive("DIST_TIMEOUT_SECONDS", c.dist_timeout_seconds);
  const bool plain_name = std::all_of(c.run_id.begin(), c.run_id.end(), [](char ch) {
    return std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '_' || ch == '-';
  });
  require(plain_name && c.run_id != "." && c.run_id != "..",
          "RUN_ID must be a plain folder name inside LOG_DIR (letters, digits, '.', '_' and '-'; not '.' or '..'), or "
          "empty for one made of the date, time and SEED",
          {"RUN_ID"});
}

std::string format_config(const Config& cfg, const std::map<std::string, std::string>* sources) {
  std::ostringstream out;
  for (const auto& k : config_keys()) {
    std::string v = get_config_value(cfg, k);
    // Quoted when it holds white space or '#' or starts with a quote, in a
    // quote character it lacks. A value read from a file that holds both was
    // read unquoted, so it has no comment or leading quote and reads back as it is.
    const char q = v.find('"') == std::string::npos ? '"' : '\'';
    const bool quote =
        (v.find_first_of("# \t") != std::string::npos || v.find_first_of("\"'") == 0) && v.find(q) == std::string::npos;
    out << k.name << '=' << (quote ? q + v + q : v);
    if (sources) {
      auto it = sources->find(k.name);
      out << "  # " << (it == sources->end() ? "default" : it->second);
    }
    out << '\n';
  }
  return out.str();
}

std::string describe_config_keys() {
  const Config defaults;
  std::ostringstream out;
  std::string group;
  for (const auto& k : config_keys()) {
    if (k.group != group) {
      group = k.group;
      out << (out.tellp() > 0 ? "\n" : "") << "[" << group << "]\n";
    }
    std::string def = get_config_value(defaults, k);
    out << "  " << k.name << " (" << type_name(k) << ", default " << (def.empty() ? "\"\"" : def) << ")\n      " << k.help
        << '\n';
  }
  return out.str();
}

}  // namespace pgolf
