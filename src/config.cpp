#include "pgolf/config.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "pgolf/codec.h"
#include "pgolf/quant.h"

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
      {"MLP_MULT", "model", &C::mlp_mult, "MLP hidden width as a multiple of MODEL_DIM"},
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
      {"TRAIN_BATCH_TOKENS", "training", &C::train_batch_tokens, "tokens per optimiser step over all ranks"},
      {"TRAIN_SEQ_LEN", "training", &C::train_seq_len, "training sequence length"},
      {"MAX_WALLCLOCK_SECONDS", "training", &C::max_wallclock_seconds, "training time cap in seconds (0 = none)"},
      {"VAL_LOSS_EVERY", "training", &C::val_loss_every, "run the standard evaluation every N steps (0 = only at the end)"},
      {"VAL_BATCH_SIZE", "training", &C::val_batch_size, "tokens per standard-evaluation batch over all ranks"},
      {"TRAIN_LOG_EVERY", "training", &C::train_log_every, "print a train_loss line every N steps"},
      {"INIT_WEIGHTS", "training", &C::init_weights, "start from this .safetensors file instead of the random init"},

      {"MATRIX_LR", "optimiser", &C::matrix_lr, "Muon learning rate for block matrices"},
      {"SCALAR_LR", "optimiser", &C::scalar_lr, "AdamW learning rate for control tensors"},
      {"TIED_EMBED_LR", "optimiser", &C::tied_embed_lr, "AdamW learning rate for tok_emb and the bigram table"},
      {"MUON_MOMENTUM", "optimiser", &C::muon_momentum, "Muon momentum after warm-up"},
      {"MUON_MOMENTUM_WARMUP_START", "optimiser", &C::muon_momentum_warmup_start, "Muon momentum at step 0"},
      {"MUON_MOMENTUM_WARMUP_STEPS", "optimiser", &C::muon_momentum_warmup_steps, "steps of linear momentum warm-up"},
      {"MUON_BACKEND_STEPS", "optimiser", &C::muon_backend_steps, "Newton-Schulz iterations per Muon update"},
      {"MUON_WD", "optimiser", &C::muon_wd, "Muon decoupled weight decay (p *= 1 - lr*wd)"},
      {"BETA1", "optimiser", &C::beta1, "Adam beta1"},
      {"BETA2", "optimiser", &C::beta2, "Adam beta2"},
      {"ADAM_EPS", "optimiser", &C::adam_eps, "Adam epsilon"},
      {"ADAM_WD", "optimiser", &C::adam_wd, "AdamW decoupled weight decay"},
      {"TIED_EMBED_WD", "optimiser", &C::tied_embed_wd, "AdamW weight decay of tok_emb and the bigram table (< 0: ADAM_WD)"},
      {"SCALAR_WD", "optimiser", &C::scalar_wd, "AdamW weight decay of the control tensors (< 0: ADAM_WD)"},
      {"GRAD_CLIP_NORM", "optimiser", &C::grad_clip_norm, "global gradient-norm clip (0 disables)"},

      {"SWA_ENABLED", "averaging", &C::swa_enabled, "average weights during the warm-down"},
      {"SWA_START_FRAC", "averaging", &C::swa_start_frac, "SWA collects once the LR multiplier is below this"},
      {"SWA_EVERY", "averaging", &C::swa_every, "SWA collects every N steps"},
      {"SWA_ADD_FINAL", "averaging", &C::swa_add_final, "SWA also adds the final weights to the average"},
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

      {"DEVICE", "runtime", &C::device, "auto, cpu or cuda"},
      {"NUM_THREADS", "runtime", &C::num_threads, "CPU threads for torch (0 = every core this process may use)"},
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
          double v = s.empty() ? 0.0 : std::strtod(s.c_str(), &end);
          if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(v)) bad_value(key, value, origin, "a finite number");
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

void apply_config_file(Config& cfg, const std::string& path, std::map<std::string, std::string>* sources) {
  std::ifstream in(path);
  if (!in) throw ConfigError("cannot read config file '" + path + "' (check the --config path)");
  std::string line;
  for (int lineno = 1; std::getline(in, line); ++lineno) {
    std::string_view s = trim(line);
    if (s.empty() || s.front() == '#') continue;
    if (s.substr(0, 7) == "export ") s = trim(s.substr(7));
    std::string origin = path + ":" + std::to_string(lineno);
    auto eq = s.find('=');
    if (eq == std::string_view::npos) throw ConfigError(origin + ": expected KEY=VALUE, got '" + std::string(s) + "'");
    std::string_view value = trim(s.substr(eq + 1));
    // A '#' after white space starts a comment; inside quotes it is part of the value.
    char q = value.empty() ? 0 : value.front();
    if ((q == '"' || q == '\'') && value.find(q, 1) != std::string_view::npos) {
      value = value.substr(1, value.find(q, 1) - 1);
    } else {
      for (std::size_t i = 1; i < value.size(); ++i)
        if (value[i] == '#' && std::isspace(static_cast<unsigned char>(value[i - 1]))) {
          value = trim(value.substr(0, i));
          break;
        }
    }
    apply_assignment(cfg, std::string(s.substr(0, eq)) + "=" + std::string(value), origin, sources);
  }
}

Config load_config(const std::vector<std::string>& files, const std::vector<std::string>& sets, const Getenv& getenv,
                   std::map<std::string, std::string>* sources) {
  Config cfg;
  for (const auto& f : files) apply_config_file(cfg, f, sources);
  for (const auto& k : config_keys()) {
    if (const char* v = getenv(k.name)) {
      set_config_value(cfg, k, trim(v), std::string("environment variable ") + k.name);
      record(sources, k.name, "env");
    }
  }
  for (const auto& s : sets) apply_assignment(cfg, s, "--set " + s, sources);
  validate_config(cfg);
  return cfg;
}

void validate_config(const Config& c) {
  auto require = [](bool ok, const std::string& msg) {
    if (!ok) throw ConfigError("invalid configuration: " + msg);
  };
  auto positive = [&](std::int64_t v, const char* name) {
    require(v > 0, std::string(name) + " must be positive, got " + std::to_string(v));
  };
  auto fraction = [&](double v, const char* name) {
    require(v >= 0.0 && v <= 1.0, std::string(name) + " must be in [0, 1], got " + std::to_string(v));
  };
  positive(c.vocab_size, "VOCAB_SIZE");
  require(c.vocab_size <= 65536, "VOCAB_SIZE must fit the uint16 shard format (<= 65536)");
  positive(c.num_layers, "NUM_LAYERS");
  positive(c.model_dim, "MODEL_DIM");
  positive(c.num_heads, "NUM_HEADS");
  positive(c.num_kv_heads, "NUM_KV_HEADS");
  positive(c.mlp_mult, "MLP_MULT");
  require(c.model_dim % c.num_heads == 0, "MODEL_DIM must be divisible by NUM_HEADS");
  require(head_dim(c) % 2 == 0, "head_dim = MODEL_DIM / NUM_HEADS must be even for RoPE");
  require(c.num_heads % c.num_kv_heads == 0, "NUM_HEADS must be divisible by NUM_KV_HEADS");
  require(c.tie_embeddings, "TIE_EMBEDDINGS=0 (an untied output head) is not implemented");
  require(c.bigram_vocab_size >= 0 && c.bigram_vocab_size != 1, "BIGRAM_VOCAB_SIZE must be 0 (off) or at least 2");
  require(c.bigram_vocab_size == 0 || c.bigram_dim > 0, "BIGRAM_DIM must be positive when BigramHash is on");
  require(c.xsa_last_n >= 0 && c.xsa_last_n <= c.num_layers, "XSA_LAST_N must be in [0, NUM_LAYERS]");
  require(c.rope_dims >= 0 && c.rope_dims <= head_dim(c) && c.rope_dims % 2 == 0,
          "ROPE_DIMS must be even and in [0, head_dim = " + std::to_string(head_dim(c)) + "], got " + std::to_string(c.rope_dims));
  require(c.rope_ntk_len >= 0, "ROPE_NTK_LEN must be >= 0 (0 = off)");
  require(c.rope_ntk_len == 0 || rope_dims(c) > 2, "ROPE_NTK_LEN needs more than 2 rotated dims (its exponent is d/(d-2))");
  require(c.iterations >= 0, "ITERATIONS must be >= 0");
  require(c.warmup_steps >= 0, "WARMUP_STEPS must be >= 0");
  require(c.warmdown_iters >= 0, "WARMDOWN_ITERS must be >= 0");
  positive(c.train_seq_len, "TRAIN_SEQ_LEN");
  // SPEC §1: with grad_accum = 8 / world_size every rank's micro-batch is
  // TRAIN_BATCH_TOKENS / 8 tokens, which must be whole sequences.
  require(c.train_batch_tokens > 0 && c.train_batch_tokens % (8 * c.train_seq_len) == 0,
          "TRAIN_BATCH_TOKENS must be a positive multiple of 8 * TRAIN_SEQ_LEN = " + std::to_string(8 * c.train_seq_len));
  require(c.max_wallclock_seconds >= 0, "MAX_WALLCLOCK_SECONDS must be >= 0");
  require(c.val_loss_every >= 0, "VAL_LOSS_EVERY must be >= 0");
  positive(c.val_batch_size, "VAL_BATCH_SIZE");
  positive(c.train_log_every, "TRAIN_LOG_EVERY");
  positive(c.muon_backend_steps, "MUON_BACKEND_STEPS");
  require(c.muon_momentum_warmup_steps >= 0, "MUON_MOMENTUM_WARMUP_STEPS must be >= 0");
  fraction(c.swa_start_frac, "SWA_START_FRAC");
  positive(c.swa_every, "SWA_EVERY");
  fraction(c.ema_decay, "EMA_DECAY");
  fraction(c.qat_start_frac, "QAT_START_FRAC");
  fraction(c.prune_frac, "PRUNE_FRAC");
  require(c.quant_passthrough_numel >= 0, "QUANT_PASSTHROUGH_NUMEL must be >= 0");
  positive(c.budget_bytes, "BUDGET_BYTES");
  require(parse_codec(c.artifact_codec).has_value(), "ARTIFACT_CODEC must be zstd, xz or brotli, got '" + c.artifact_codec + "'");
  positive(c.gptq_tokens, "GPTQ_TOKENS");
  positive(c.gptq_block, "GPTQ_BLOCK");
  require(c.gptq_damp >= 0, "GPTQ_DAMP must be >= 0");
  require(c.fit_margin_bytes >= 0 && c.fit_margin_bytes < c.budget_bytes, "FIT_MARGIN_BYTES must be in [0, BUDGET_BYTES)");
  try {
    quant_options(c);
  } catch (const ConfigError& e) {
    require(false, e.what());
  }
  require(c.grad_clip_norm >= 0, "GRAD_CLIP_NORM must be >= 0");
  positive(c.eval_batch_seqs, "EVAL_BATCH_SEQS");
  require(c.eval_seq_len >= 0, "EVAL_SEQ_LEN must be >= 0 (0 means TRAIN_SEQ_LEN)");
  require(c.eval_stride > 0 && c.eval_stride <= eval_seq_len(c), "EVAL_STRIDE must be in [1, EVAL_SEQ_LEN]");
  require(c.device == "auto" || c.device == "cpu" || c.device == "cuda", "DEVICE must be auto, cpu or cuda, got '" + c.device + "'");
  require(c.num_threads >= 0, "NUM_THREADS must be >= 0");
  positive(c.dist_timeout_seconds, "DIST_TIMEOUT_SECONDS");
}

std::string format_config(const Config& cfg, const std::map<std::string, std::string>* sources) {
  std::ostringstream out;
  for (const auto& k : config_keys()) {
    std::string v = get_config_value(cfg, k);
    bool quote = v.find_first_of("# \t") != std::string::npos;
    out << k.name << '=' << (quote ? "\"" + v + "\"" : v);
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
