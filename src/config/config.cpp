#include "pgolf/config/config.h"
#include "pgolf/config/components.h"
#include "pgolf/core/doc.h"

#include "pgolf/config/python_names.h"
#include "pgolf/eval/score_lines.h"
#include "pgolf/config/record.h"
#include "pgolf/core/io.h"

#include <algorithm>
#include <set>
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

namespace pgolf {
namespace {

// The key NAME of field Section.Field: its text is read with parse_value and
// written with format_value (values.h) for the field's type.
template <auto Section, auto Field>
ConfigKey key(const char* name, const char* group, const char* help) {
  using T = std::decay_t<decltype(std::declval<Config&>().*Section.*Field)>;
  return {name, group, value_type_name(static_cast<const T*>(nullptr)),
          [](Config& c, std::string_view text) { parse_value(text, c.*Section.*Field); },
          [](const Config& c) { return format_value(c.*Section.*Field); }, help};
}

}  // namespace

const std::vector<ConfigKey>& config_keys() {
  static const std::vector<ConfigKey> keys = {
      key<&Config::run, &RunConfig::data_path>("DATA_PATH", "data", PGOLF_DOC("directory holding fineweb_train_*.bin and fineweb_val_*.bin shards")),
      key<&Config::run, &RunConfig::tokenizer_path>("TOKENIZER_PATH", "data", PGOLF_DOC("SentencePiece model used for the bits-per-byte tables")),
      key<&Config::run, &RunConfig::tokenizer_check>("TOKENIZER_CHECK", "data", PGOLF_DOC("1: train, eval and data stop unless TOKENIZER_PATH made the shards (DATA_PATH's "
       "tokenizer_record.txt, and the first 64 val documents decode and encode to the same ids); 0: skip, for a deliberate experiment")),
      key<&Config::run, &RunConfig::run_id>("RUN_ID", "data", PGOLF_DOC("name of the run folder under LOG_DIR (empty: date and time)")),
      key<&Config::run, &RunConfig::log_dir>("LOG_DIR", "data", PGOLF_DOC("folder that holds one subfolder of logs and outputs per run")),
      key<&Config::run, &RunConfig::seed>("SEED", "data", PGOLF_DOC("random seed for initialisation")),

      key<&Config::model, &ModelConfig::vocab_size>("VOCAB_SIZE", "model", PGOLF_DOC("vocabulary size; must equal the tokenizer's")),
      key<&Config::model, &ModelConfig::num_layers>("NUM_LAYERS", "model", PGOLF_DOC("transformer blocks (first half encoder, rest decoder of the U-Net)")),
      key<&Config::model, &ModelConfig::model_dim>("MODEL_DIM", "model", PGOLF_DOC("residual width")),
      key<&Config::model, &ModelConfig::num_heads>("NUM_HEADS", "model", PGOLF_DOC("query heads (head_dim = MODEL_DIM / NUM_HEADS)")),
      key<&Config::model, &ModelConfig::num_kv_heads>("NUM_KV_HEADS", "model", PGOLF_DOC("key/value heads (grouped-query attention)")),
      key<&Config::model, &ModelConfig::attn_out_gate>("ATTN_OUT_GATE", "model", PGOLF_DOC("sparse attention output gate (the 1.0611 record): head h's output times sigmoid(0.5 * W_g[h] . n[0:12]), "
       "n the block's normed attention input, W_g [heads, 12] zero-initialised (0.5 at init)")),
      key<&Config::model, &ModelConfig::smear_bos_aware>("SMEAR_BOS_AWARE", "model", PGOLF_DOC("BOS-aware SmearGate (the 1.0611 record) in place of the per-channel one, then RMSNorm: "
       "e_t += lambda * sigmoid(W_s . e_t[0:12]) * e_(t-1) for t >= 1, except at BOS tokens; W_s [1, 12] and lambda zero-initialised")),
      key<&Config::model, &ModelConfig::skip_gates>("SKIP_GATES", "model", PGOLF_DOC("gated U-Net skips (the 1.0611 record): x = lerp(w * skip, x, sigmoid(g)) with skip_gates g zero-initialised, "
       "instead of x + w * skip")),
      key<&Config::model, &ModelConfig::loop_layers>("LOOP_LAYERS", "model", PGOLF_DOC("depth recurrence (the 1.0611 record): physical layers A-B (e.g. 3-5) run LOOP_REPEATS times in a row once "
       "LOOP_START_FRAC of the run has passed, and for every evaluation after; repeats share every weight; empty = off")),
      key<&Config::model, &ModelConfig::loop_repeats>("LOOP_REPEATS", "model", PGOLF_DOC("depth recurrence: how many times the looped layers run")),
      key<&Config::model, &ModelConfig::loop_start_frac>("LOOP_START_FRAC", "model", PGOLF_DOC("depth recurrence starts at this fraction of the wall clock (of ITERATIONS without a cap); 0 = from the start")),
      key<&Config::model, &ModelConfig::parallel_resid_from>("PARALLEL_RESID_FROM", "model", PGOLF_DOC("parallel residuals (the 1.0611 record, 8): from this decoder layer on, attention and MLP read two lanes and "
       "write both through learned [2,2] weights; -1 = off")),
      key<&Config::model, &ModelConfig::mlp_mult>("MLP_MULT", "model", PGOLF_DOC("MLP hidden width as a multiple of MODEL_DIM")),
      key<&Config::model, &ModelConfig::mlp_activation>("MLP_ACTIVATION", "model", PGOLF_DOC("MLP activation: relu2 = relu(x)^2 (the seeds), leaky_relu2 = leaky_relu(x, MLP_LEAKY_SLOPE)^2 (the 1.0611 record)")),
      key<&Config::model, &ModelConfig::mlp_leaky_slope>("MLP_LEAKY_SLOPE", "model", PGOLF_DOC("negative slope of leaky_relu2")),
      key<&Config::model, &ModelConfig::tie_embeddings>("TIE_EMBEDDINGS", "model", PGOLF_DOC("output head shares tok_emb (only 1 is supported)")),
      key<&Config::model, &ModelConfig::tied_embed_init_std>("TIED_EMBED_INIT_STD", "model", PGOLF_DOC("std of the normal init of tok_emb")),
      key<&Config::model, &ModelConfig::rope_base>("ROPE_BASE", "model", PGOLF_DOC("RoPE frequency base")),
      key<&Config::model, &ModelConfig::logit_softcap>("LOGIT_SOFTCAP", "model", PGOLF_DOC("logits become c*tanh(logits/c)")),
      key<&Config::model, &ModelConfig::qk_gain_init>("QK_GAIN_INIT", "model", PGOLF_DOC("initial per-head query gain q_gain")),
      key<&Config::model, &ModelConfig::bigram_vocab_size>("BIGRAM_VOCAB_SIZE", "model", PGOLF_DOC("BigramHash buckets (0 disables BigramHash)")),
      key<&Config::model, &ModelConfig::bigram_dim>("BIGRAM_DIM", "model", PGOLF_DOC("BigramHash table width before its projection")),
      key<&Config::model, &ModelConfig::xsa_last_n>("XSA_LAST_N", "model", PGOLF_DOC("apply XSA in the last N blocks (0 = off)")),
      key<&Config::model, &ModelConfig::rope_dims>("ROPE_DIMS", "model", PGOLF_DOC("partial RoPE: rotate only the first N dims of each head (0 = all)")),
      key<&Config::model, &ModelConfig::rope_ntk_len>("ROPE_NTK_LEN", "model", PGOLF_DOC("NTK-scaled RoPE: the length the tables were built for; longer sequences of length T use base*(T/N)^(d/(d-2)) (0 = off)")),
      key<&Config::model, &ModelConfig::ln_scale>("LN_SCALE", "model", PGOLF_DOC("block i multiplies the normed attention and MLP inputs by 1/sqrt(i+1)")),
      key<&Config::model, &ModelConfig::smear_before_norm>("SMEAR_BEFORE_NORM", "model", PGOLF_DOC("after the embedding: 1 = SmearGate then RMSNorm, 0 = RMSNorm then SmearGate")),

      key<&Config::schedule, &ScheduleConfig::iterations>("ITERATIONS", "training", PGOLF_DOC("maximum training steps")),
      key<&Config::train, &TrainConfig::warmup_steps>("WARMUP_STEPS", "training", PGOLF_DOC("kernel warm-up steps, undone before training starts")),
      key<&Config::schedule, &ScheduleConfig::warmdown_iters>("WARMDOWN_ITERS", "training", PGOLF_DOC("length of the final linear LR decay, in steps")),
      key<&Config::schedule, &ScheduleConfig::lr_schedule>("LR_SCHEDULE", "training", PGOLF_DOC("warmdown: 1, then linear to 0 over the last WARMDOWN_ITERS steps (in time under a cap), the seeds'; "
       "hold_decay: 1 until LR_HOLD_FRAC of the run (of the wall clock, else of ITERATIONS), then linear to 0 at its end")),
      key<&Config::schedule, &ScheduleConfig::lr_hold_frac>("LR_HOLD_FRAC", "training", PGOLF_DOC("hold_decay: the fraction of the run at the full rate")),
      key<&Config::schedule, &ScheduleConfig::min_lr>("MIN_LR", "training", PGOLF_DOC("floor of the LR multiplier, under either schedule (0 = none)")),
      key<&Config::train, &TrainConfig::train_batch_tokens>("TRAIN_BATCH_TOKENS", "training", PGOLF_DOC("tokens per optimiser step over all ranks")),
      key<&Config::train, &TrainConfig::train_seq_len>("TRAIN_SEQ_LEN", "training", PGOLF_DOC("training sequence length")),
      key<&Config::schedule, &ScheduleConfig::max_wallclock_seconds>("MAX_WALLCLOCK_SECONDS", "training", PGOLF_DOC("training time cap in seconds (0 = none)")),
      key<&Config::train, &TrainConfig::val_loss_every>("VAL_LOSS_EVERY", "training", PGOLF_DOC("run the standard evaluation every N steps (0 = only at the end)")),
      key<&Config::train, &TrainConfig::val_batch_size>("VAL_BATCH_SIZE", "training", PGOLF_DOC("tokens per standard-evaluation batch over all ranks")),
      key<&Config::train, &TrainConfig::train_log_every>("TRAIN_LOG_EVERY", "training", PGOLF_DOC("print a train_loss line every N steps")),
      key<&Config::train, &TrainConfig::init_weights>("INIT_WEIGHTS", "training", PGOLF_DOC("start from this .safetensors file instead of the random init")),
      key<&Config::train, &TrainConfig::checkpoint_every>("CHECKPOINT_EVERY", "training", PGOLF_DOC("write the run's full training state to RUN_DIR/checkpoint.safetensors every N steps, for `pgolf train --resume "
       "RUN_DIR` after a crash (0 = off)")),
      key<&Config::train, &TrainConfig::checkpoint_minutes>("CHECKPOINT_MINUTES", "training", PGOLF_DOC("write the training state as CHECKPOINT_EVERY does whenever this many minutes of training time (the clock the "
       "ranks agree on) have passed since the last checkpoint (0 = off)")),

      key<&Config::optim, &OptimConfig::matrix_lr>("MATRIX_LR", "optimiser", PGOLF_DOC("Muon learning rate for block matrices")),
      key<&Config::optim, &OptimConfig::scalar_lr>("SCALAR_LR", "optimiser", PGOLF_DOC("AdamW learning rate for control tensors")),
      key<&Config::optim, &OptimConfig::tied_embed_lr>("TIED_EMBED_LR", "optimiser", PGOLF_DOC("AdamW learning rate for tok_emb and the bigram table")),
      key<&Config::optim, &OptimConfig::muon_momentum>("MUON_MOMENTUM", "optimiser", PGOLF_DOC("Muon momentum after warm-up")),
      key<&Config::optim, &OptimConfig::muon_momentum_warmup_start>("MUON_MOMENTUM_WARMUP_START", "optimiser", PGOLF_DOC("Muon momentum at step 0")),
      key<&Config::optim, &OptimConfig::muon_momentum_warmup_steps>("MUON_MOMENTUM_WARMUP_STEPS", "optimiser", PGOLF_DOC("steps of linear momentum warm-up")),
      key<&Config::optim, &OptimConfig::muon_backend_steps>("MUON_BACKEND_STEPS", "optimiser", PGOLF_DOC("Newton-Schulz iterations per Muon update")),
      key<&Config::optim, &OptimConfig::muon_wd>("MUON_WD", "optimiser", PGOLF_DOC("Muon decoupled weight decay (p *= 1 - lr*wd)")),
      key<&Config::optim, &OptimConfig::muon_ns_coeffs>("MUON_NS_COEFFS", "optimiser", PGOLF_DOC("Newton-Schulz coefficients: classic (MUON_BACKEND_STEPS x (3.4445,-4.775,2.0315)), polar_express (five tuned "
       "iterations, the 1.0611 record) or a,b,c;a,b,c;... one tuple per iteration")),
      key<&Config::optim, &OptimConfig::muon_row_norm>("MUON_ROW_NORM", "optimiser", PGOLF_DOC("MuonEq-R: divide each row of the Nesterov update by its L2 norm (floor 1e-7) before Newton-Schulz")),
      key<&Config::optim, &OptimConfig::beta1>("BETA1", "optimiser", PGOLF_DOC("Adam beta1")),
      key<&Config::optim, &OptimConfig::beta2>("BETA2", "optimiser", PGOLF_DOC("Adam beta2")),
      key<&Config::optim, &OptimConfig::adam_eps>("ADAM_EPS", "optimiser", PGOLF_DOC("Adam epsilon")),
      key<&Config::optim, &OptimConfig::adam_wd>("ADAM_WD", "optimiser", PGOLF_DOC("AdamW decoupled weight decay")),
      key<&Config::optim, &OptimConfig::tied_embed_wd>("TIED_EMBED_WD", "optimiser", PGOLF_DOC("AdamW weight decay of tok_emb and the bigram table (< 0: ADAM_WD)")),
      key<&Config::optim, &OptimConfig::scalar_wd>("SCALAR_WD", "optimiser", PGOLF_DOC("AdamW weight decay of the control tensors (< 0: ADAM_WD)")),
      key<&Config::optim, &OptimConfig::tied_embed_beta1>("TIED_EMBED_BETA1", "optimiser", PGOLF_DOC("Adam beta1 of tok_emb and the bigram table (< 0: BETA1)")),
      key<&Config::optim, &OptimConfig::tied_embed_beta2>("TIED_EMBED_BETA2", "optimiser", PGOLF_DOC("Adam beta2 of tok_emb and the bigram table (< 0: BETA2)")),
      key<&Config::optim, &OptimConfig::scalar_beta1>("SCALAR_BETA1", "optimiser", PGOLF_DOC("Adam beta1 of the control tensors (< 0: BETA1)")),
      key<&Config::optim, &OptimConfig::scalar_beta2>("SCALAR_BETA2", "optimiser", PGOLF_DOC("Adam beta2 of the control tensors (< 0: BETA2)")),
      key<&Config::optim, &OptimConfig::grad_clip_norm>("GRAD_CLIP_NORM", "optimiser", PGOLF_DOC("global gradient-norm clip (0 disables)")),

      key<&Config::averaging, &AveragingConfig::swa_enabled>("SWA_ENABLED", "averaging", PGOLF_DOC("average weights during the warm-down")),
      key<&Config::averaging, &AveragingConfig::swa_start_frac>("SWA_START_FRAC", "averaging", PGOLF_DOC("SWA collects once the LR multiplier is below this")),
      key<&Config::averaging, &AveragingConfig::swa_every>("SWA_EVERY", "averaging", PGOLF_DOC("SWA collects every N steps")),
      key<&Config::averaging, &AveragingConfig::swa_add_final>("SWA_ADD_FINAL", "averaging", PGOLF_DOC("SWA also adds the final weights to the average")),
      key<&Config::averaging, &AveragingConfig::swa_step_index>("SWA_STEP_INDEX", "averaging", PGOLF_DOC("which step count SWA_EVERY divides: done (steps done: after steps 50, 100, ...; #219, #286) or taken (the "
       "0-based index of the step just taken: after steps 51, 101, ...; #76)")),
      key<&Config::averaging, &AveragingConfig::ema_enabled>("EMA_ENABLED", "averaging", PGOLF_DOC("exponential moving average of weights (replaces SWA)")),
      key<&Config::averaging, &AveragingConfig::ema_decay>("EMA_DECAY", "averaging", PGOLF_DOC("EMA decay per step")),
      key<&Config::qat, &QatConfig::qat_enabled>("QAT_ENABLED", "averaging", PGOLF_DOC("quantisation-aware training: matrices enter the forward pass fake-quantised")),
      key<&Config::qat, &QatConfig::qat_start_frac>("QAT_START_FRAC", "averaging", PGOLF_DOC("QAT starts at this fraction of the wall clock (of ITERATIONS without a cap); 0 = from the first step")),
      key<&Config::qat, &QatConfig::qat_quant>("QAT_QUANT", "averaging", PGOLF_DOC("QAT quantiser for every block matrix and bigram.proj (empty: each matrix's QUANT_MLP/QUANT_ATTN/QUANT_BIGRAM_PROJ)")),

      key<&Config::export_, &ExportConfig::prune_frac>("PRUNE_FRAC", "export", PGOLF_DOC("fraction of smallest |w| zeroed in each large matrix")),
      key<&Config::export_, &ExportConfig::quant_mlp>("QUANT_MLP", "export", PGOLF_DOC("MLP matrices: fp16, fp32 or int<B>[,q=<clip quantile>][,floor][,sym] (floor: scale >= 1/qmax; sym: range +-qmax)")),
      key<&Config::export_, &ExportConfig::quant_attn>("QUANT_ATTN", "export", PGOLF_DOC("attention matrices (same syntax as QUANT_MLP)")),
      key<&Config::export_, &ExportConfig::quant_bigram_proj>("QUANT_BIGRAM_PROJ", "export", PGOLF_DOC("bigram.proj when larger than QUANT_PASSTHROUGH_NUMEL")),
      key<&Config::export_, &ExportConfig::quant_tok_emb>("QUANT_TOK_EMB", "export", PGOLF_DOC("the token embedding tok_emb")),
      key<&Config::export_, &ExportConfig::quant_bigram_embed>("QUANT_BIGRAM_EMBED", "export", PGOLF_DOC("the BigramHash table bigram.embed")),
      key<&Config::export_, &ExportConfig::quant_other>("QUANT_OTHER", "export", PGOLF_DOC("any other large tensor")),
      key<&Config::export_, &ExportConfig::quant_passthrough_numel>("QUANT_PASSTHROUGH_NUMEL", "export", PGOLF_DOC("float tensors with at most this many entries are stored fp16")),
      key<&Config::export_, &ExportConfig::quant_control_fp32_first>("QUANT_CONTROL_FP32_FIRST", "export", PGOLF_DOC("control tensors are stored fp32 before the size rule applies (0: small ones become fp16)")),
      key<&Config::export_, &ExportConfig::fp16_keep_name_patterns>("FP16_KEEP_NAME_PATTERNS", "export", PGOLF_DOC("comma-separated name fragments kept as fp16")),
      key<&Config::export_, &ExportConfig::gptq_reserve_seconds>("GPTQ_RESERVE_SECONDS", "export",PGOLF_DOC(
                                                                 "with a plan that uses gptq and a cap: seconds of MAX_WALLCLOCK_SECONDS "
                                                                 "kept for the calibration on training data, which the challenge counts as "
                                                                 "training; the training loop stops that much earlier (docs/RULES.md)")),
      key<&Config::export_, &ExportConfig::gptq_tokens>("GPTQ_TOKENS", "export", PGOLF_DOC("training tokens run through the final model to calibrate plans with the gptq option")),
      key<&Config::export_, &ExportConfig::gptq_damp>("GPTQ_DAMP", "export", PGOLF_DOC("GPTQ damping: added to the Hessian diagonal as a fraction of its mean")),
      key<&Config::export_, &ExportConfig::gptq_block>("GPTQ_BLOCK", "export", PGOLF_DOC("GPTQ columns per lazy-update block")),
      key<&Config::export_, &ExportConfig::lqer_tensors>("LQER_TENSORS", "export", PGOLF_DOC("give this many integer-quantised matrices (largest quantisation error first) a low-rank correction of their error, int2/int4 factors (0: none)")),
      key<&Config::export_, &ExportConfig::lqer_rank>("LQER_RANK", "export", PGOLF_DOC("rank of the LQER corrections")),
      key<&Config::export_, &ExportConfig::artifact_codec>("ARTIFACT_CODEC", "export", PGOLF_DOC("compressor of the artifact payload: brotli (quality 11, the smallest on pgolf's payloads), zstd (level 22, as the seeds) or xz (-9e)")),
      key<&Config::export_, &ExportConfig::budget_bytes>("BUDGET_BYTES", "export", PGOLF_DOC("artifact + code bytes allowed (the challenge: 16,000,000)")),
      key<&Config::export_, &ExportConfig::export_fit>("EXPORT_FIT", "export", PGOLF_DOC("over the budget, change pruning and QUANT_* plans (cheapest error per byte first) until the artifact fits; 0: keep them and only warn")),
      key<&Config::export_, &ExportConfig::fit_margin_bytes>("FIT_MARGIN_BYTES", "export", PGOLF_DOC("bytes of the budget the fitted export leaves unused")),
      key<&Config::export_, &ExportConfig::fit_spend_spare>("FIT_SPEND_SPARE", "export", PGOLF_DOC("under the budget, spend the spare bytes (less pruning, one bit more, int8 -> fp16) where they remove the most error")),

      key<&Config::eval, &EvalConfig::eval_stride>("EVAL_STRIDE", "evaluation", PGOLF_DOC("sliding-window stride")),
      key<&Config::eval, &EvalConfig::eval_batch_seqs>("EVAL_BATCH_SEQS", "evaluation", PGOLF_DOC("windows per sliding-evaluation batch")),
      key<&Config::eval, &EvalConfig::eval_seq_len>("EVAL_SEQ_LEN", "evaluation", PGOLF_DOC("sliding-window length (0 = TRAIN_SEQ_LEN)")),
      key<&Config::eval, &EvalConfig::override_recorded>("OVERRIDE_RECORDED", "evaluation",PGOLF_DOC(
                                                         "1: `pgolf eval` and `pgolf export --weights` use configured values that "
                                                         "differ from what the model file records (its architecture and scoring keys), "
                                                         "for a deliberate experiment; 0: such a configuration is refused")),
      key<&Config::eval, &EvalConfig::log_compat>("LOG_COMPAT", "evaluation",PGOLF_DOC(
                                                  "final lines printed also in the format of a Python script: baseline "
                                                  "(final_int8_zlib_roundtrip, the non-sliding round trip, as train_gpt.py), "
                                                  "seed76, seed219, seed286, seed389 (the seed presets set theirs) or none; "
                                                  "docs/FROM_PYTHON.md maps every line")),
      key<&Config::eval, &EvalConfig::eval_tokens_limit>("EVAL_TOKENS_LIMIT", "evaluation",PGOLF_DOC(
                                                         "quick experiments: score only the first N validation targets "
                                                         "(0 = all); every score line then ends with "
                                                         "subset:first_N_tokens(not_the_challenge_score)")),
      key<&Config::eval, &EvalConfig::prequant_eval>("PREQUANT_EVAL", "evaluation", PGOLF_DOC("also score the fp32 weights before export (shows the quantisation penalty)")),
      key<&Config::ttt, &TttConfig::ttt_enabled>("TTT_ENABLED", "evaluation", PGOLF_DOC("also score with score-first test-time training (per-document LoRA adapters, docs/MODEL.md): `pgolf eval` and the end of `pgolf train`")),
      key<&Config::ttt, &TttConfig::ttt_targets>("TTT_TARGETS", "evaluation", PGOLF_DOC("TTT: adapted sites, a subset of q,k,v,o,mlp,head")),
      key<&Config::ttt, &TttConfig::ttt_rank>("TTT_RANK", "evaluation", PGOLF_DOC("TTT: LoRA rank")),
      key<&Config::ttt, &TttConfig::ttt_alpha>("TTT_ALPHA", "evaluation", PGOLF_DOC("TTT: LoRA alpha (the delta is scaled by alpha / rank)")),
      key<&Config::ttt, &TttConfig::ttt_chunk>("TTT_CHUNK", "evaluation", PGOLF_DOC("TTT: targets scored, then trained on, per step of a document")),
      key<&Config::ttt, &TttConfig::ttt_context>("TTT_CONTEXT", "evaluation", PGOLF_DOC("TTT: window of the document's own past per chunk (0 = EVAL_SEQ_LEN)")),
      key<&Config::ttt, &TttConfig::ttt_batch_docs>("TTT_BATCH_DOCS", "evaluation", PGOLF_DOC("TTT: documents adapted together (each its own adapters)")),
      key<&Config::ttt, &TttConfig::ttt_lr>("TTT_LR", "evaluation", PGOLF_DOC("TTT: AdamW learning rate of the adapters")),
      key<&Config::ttt, &TttConfig::ttt_beta1>("TTT_BETA1", "evaluation", PGOLF_DOC("TTT: AdamW beta1")),
      key<&Config::ttt, &TttConfig::ttt_beta2>("TTT_BETA2", "evaluation", PGOLF_DOC("TTT: AdamW beta2")),
      key<&Config::ttt, &TttConfig::ttt_eps>("TTT_EPS", "evaluation", PGOLF_DOC("TTT: AdamW epsilon")),
      key<&Config::ttt, &TttConfig::ttt_wd>("TTT_WD", "evaluation", PGOLF_DOC("TTT: AdamW weight decay")),
      key<&Config::ttt, &TttConfig::ttt_global_after>("TTT_GLOBAL_AFTER", "evaluation", PGOLF_DOC("TTT: increasing counts of scored documents after which one epoch of full-model SGD runs over the documents scored so far (\"\" = none)")),
      key<&Config::ttt, &TttConfig::ttt_global_lr>("TTT_GLOBAL_LR", "evaluation", PGOLF_DOC("TTT global phases: SGD learning rate (cosine to 0 over the epoch)")),
      key<&Config::ttt, &TttConfig::ttt_global_momentum>("TTT_GLOBAL_MOMENTUM", "evaluation", PGOLF_DOC("TTT global phases: SGD momentum")),
      key<&Config::ttt, &TttConfig::ttt_global_clip>("TTT_GLOBAL_CLIP", "evaluation", PGOLF_DOC("TTT global phases: gradient-norm clip")),
      key<&Config::ttt, &TttConfig::ttt_global_batch_seqs>("TTT_GLOBAL_BATCH_SEQS", "evaluation", PGOLF_DOC("TTT global phases: EVAL_SEQ_LEN sequences per rank and step")),
      key<&Config::eval, &EvalConfig::eval_budget_seconds>("EVAL_BUDGET_SECONDS", "evaluation", PGOLF_DOC("TTT: wall-clock budget of the evaluation (0 = none); past it the remaining documents are scored without adaptation")),

      key<&Config::runtime, &RuntimeConfig::device>("DEVICE", "runtime", PGOLF_DOC("auto, cpu or cuda")),
      key<&Config::runtime, &RuntimeConfig::num_threads>("NUM_THREADS", "runtime", PGOLF_DOC("CPU threads for torch (0 = every core this process may use)")),
      key<&Config::runtime, &RuntimeConfig::progress>("PROGRESS", "runtime", PGOLF_DOC("in-place progress lines on stdout (rewritten with \\r): auto = only on an interactive terminal and not under "
       "a launcher (mpirun, Slurm, torchrun variables); on; off. Log files never get them")),
      key<&Config::runtime, &RuntimeConfig::fused_kernels>("FUSED_KERNELS", "runtime", PGOLF_DOC("CUDA: fused soft-capped cross-entropy (no float32 logits for the whole batch), q/k RMSNorm + RoPE + q_gain, relu^2 / LeakyReLU^2, "
       "each block's residual adds with their RMSNorm, the embedding's SmearGate + RMSNorm (not the BOS-aware gate) and XSA kernels; "
       "ignored, with a note in the log, elsewhere. Off until measured on a GPU")),
      key<&Config::runtime, &RuntimeConfig::cuda_graphs>("CUDA_GRAPHS", "runtime", PGOLF_DOC("CUDA: record the training step (forward, backward, gradient all-reduce, clipping, optimisers) once per model "
       "mode into a CUDA graph and replay it, one launch per step instead of thousands; the first step of each mode "
       "runs eagerly, and if a capture fails the run says why and goes on eagerly. Ignored, with a note in the log, "
       "elsewhere. Off until measured on a GPU")),
      key<&Config::runtime, &RuntimeConfig::dist_timeout_seconds>("DIST_TIMEOUT_SECONDS", "runtime", PGOLF_DOC("multi-process runs: how long a collective may wait for a peer before the run stops with an error")),
      key<&Config::runtime, &RuntimeConfig::main_phase_timeout_seconds>("MAIN_PHASE_TIMEOUT_SECONDS", "runtime",PGOLF_DOC(
                                                                        "multi-process runs: how long the other ranks wait for what rank 0 does alone "
                                                                        "(the export with its fitting and GPTQ, a checkpoint write) before the run stops "
                                                                        "with an error")),
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
  if (const PythonName* p = find_python_name(name); p && *p->pgolf_key) return p->pgolf_key;
  const ConfigKey* best = nullptr;
  std::size_t best_d = SIZE_MAX;
  for (const auto& k : config_keys()) {
    std::size_t d = edit_distance(name, k.name);
    if (d < best_d) best_d = d, best = &k;
  }
  return best->name;
}

void set_config_value(Config& cfg, const ConfigKey& key, std::string_view value, const std::string& origin) {
  try {
    key.set(cfg, value);
  } catch (const std::invalid_argument& e) {
    throw ConfigError(origin + ": " + key.name + "='" + std::string(value) + "' " + e.what());
  }
}

std::string get_config_value(const Config& cfg, const ConfigKey& key) { return key.get(cfg); }

void apply_assignment(Config& cfg, std::string_view assignment, const std::string& origin,
                      std::map<std::string, std::string>* sources) {
  auto eq = assignment.find('=');
  if (eq == std::string_view::npos)
    throw ConfigError(origin + ": expected KEY=VALUE, got '" + std::string(assignment) + "'");
  std::string_view name = trim(assignment.substr(0, eq));
  std::string_view value = trim(assignment.substr(eq + 1));
  if (const PythonName* p = find_python_name(name))
    throw ConfigError(origin + ": " + explain_python_name(*p) +
                      (*p->pgolf_key ? std::string(": use ") + p->pgolf_key + " instead" : std::string("; remove it")));
  const ConfigKey* key = find_config_key(name);
  if (!key)
    throw ConfigError(origin + ": unknown key '" + std::string(name) + "' (did you mean " + closest_config_key(name) +
                      "? `pgolf config --list` shows every key)");
  set_config_value(cfg, *key, value, origin);
  record(sources, key->name, origin);
}

std::map<std::string, std::string> config_values(const Config& cfg) {
  std::map<std::string, std::string> out;
  for (const auto& k : config_keys()) out[k.name] = get_config_value(cfg, k);
  return out;
}

bool changes_results(const ConfigKey& key) {
  static const std::set<std::string> only_where_and_when = {
      "RUN_ID",          "LOG_DIR",       "PROGRESS",         "DIST_TIMEOUT_SECONDS",
      "TRAIN_LOG_EVERY", "VAL_LOSS_EVERY", "CHECKPOINT_EVERY", "CHECKPOINT_MINUTES", "MAIN_PHASE_TIMEOUT_SECONDS",
      "TOKENIZER_CHECK", "LOG_COMPAT"};
  return !only_where_and_when.count(key.name);
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

namespace {

// A model file's record under everything else: its keys must be keys of a
// record that this pgolf knows.
void apply_record(Config& cfg, const ModelRecord& recorded, std::map<std::string, std::string>* sources) {
  const std::string origin = record_origin(recorded);
  for (const auto& [name, value] : recorded.values) {
    const ConfigKey* key = find_config_key(name);
    if (!key)
      throw ConfigError("'" + recorded.file + "' records the key '" + printable(name) +
                        "', which this pgolf does not know (a file of a newer pgolf? score it with that version)");
    if (!recorded_key(*key))
      throw ConfigError("'" + recorded.file + "' records the key '" + name + "', which a model record does not hold (a damaged file?)");
    set_config_value(cfg, *key, value, origin);
    record(sources, key->name, origin);
  }
}

}  // namespace

Config load_config(const std::vector<std::string>& files, const std::vector<std::string>& sets, const Getenv& getenv,
                   std::map<std::string, std::string>* sources, const ModelRecord* recorded) {
  std::map<std::string, std::string> own;  // validation errors name the sources even when the caller wants none
  if (!sources) sources = &own;
  Config cfg;
  if (recorded) apply_record(cfg, *recorded, sources);
  for (const auto& f : files) apply_config_file(cfg, f, sources);
  for (const auto& p : python_names())
    if (getenv(p.name))
      throw ConfigError("environment variable " + explain_python_name(p) +
                        (*p.pgolf_key ? std::string(": set ") + p.pgolf_key + " instead, and" : std::string(";")) +
                        " unset " + p.name);
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
  fill_derived(cfg);
  validate_config(cfg, sources);
  return cfg;
}

bool uses_gptq(const ExportConfig& e) {
  for (const TensorPlan* p : {&e.quant_mlp, &e.quant_attn, &e.quant_bigram_proj, &e.quant_tok_emb, &e.quant_bigram_embed, &e.quant_other})
    if (p->scheme == Scheme::IntRow && p->quant.gptq) return true;
  return false;
}

void fill_derived(Config& cfg) {
  if (cfg.eval.eval_seq_len == 0) cfg.eval.eval_seq_len = cfg.train.train_seq_len;
  cfg.schedule.calibration_reserve_seconds =
      uses_gptq(cfg.export_) && cfg.schedule.max_wallclock_seconds > 0 ? cfg.export_.gptq_reserve_seconds : 0.0;
  if (cfg.ttt.ttt_context == 0) cfg.ttt.ttt_context = cfg.eval.eval_seq_len;
}

namespace {

// Validation's vocabulary. Every message ends with the keys it is about:
// their values and where each came from (file:line, environment variable,
// --set or the default).
class Check {
 public:
  Check(const Config& cfg, const std::map<std::string, std::string>* sources) : cfg_(cfg), sources_(sources) {}

  void require(bool ok, const std::string& msg, std::initializer_list<const char*> keys) const {
    if (!ok) throw ConfigError("invalid configuration: " + msg + " (" + shown(keys) + ")");
  }
  // Integer sizes and counts: [lo, hi], hi a practical limit within int32.
  void range(const char* key, std::int64_t v, std::int64_t lo, std::int64_t hi = INT32_MAX) const {
    const std::string low = lo == 1 ? "positive" : lo == 0 ? ">= 0" : ">= " + std::to_string(lo);
    require(v >= lo, std::string(key) + " must be " + low, {key});
    require(v <= hi, std::string(key) + " must be at most " + std::to_string(hi), {key});
  }
  void positive(const char* key, std::int64_t v) const { range(key, v, 1); }
  void at_least(const char* key, double v, double lo, bool strict = false) const {
    require(strict ? v > lo : v >= lo, std::string(key) + " must be " + (strict ? "> " : ">= ") + shortest_decimal(lo), {key});
  }
  void fraction(const char* key, double v) const { require(v >= 0.0 && v <= 1.0, std::string(key) + " must be in [0, 1]", {key}); }
  void below_one(const char* key, double v) const { require(v >= 0 && v < 1, std::string(key) + " must be in [0, 1)", {key}); }
  void one_of(const char* key, const std::string& v, const std::vector<std::string>& words) const {
    std::string all;
    bool found = false;
    for (const std::string& w : words) {
      found = found || v == w;
      all += (all.empty() ? "" : ", ") + w;
    }
    require(found, std::string(key) + " must be one of " + all, {key});
  }

 private:
  std::string shown(std::initializer_list<const char*> keys) const {
    std::string out;
    for (const char* k : keys) {
      out += (out.empty() ? "" : ", ") + std::string(k) + "=" + get_config_value(cfg_, *find_config_key(k));
      if (!sources_) continue;
      auto it = sources_->find(k);
      out += it == sources_->end() ? " by default"
             : it->second == "env" ? std::string(" from environment variable ") + k
                                   : " from " + it->second;
    }
    return out;
  }
  const Config& cfg_;
  const std::map<std::string, std::string>* sources_;
};

void validate(const RunConfig& c, const Check& check) {
  check.require(!c.data_path.empty(), "DATA_PATH must not be empty", {"DATA_PATH"});
  check.require(!c.tokenizer_path.empty(), "TOKENIZER_PATH must not be empty", {"TOKENIZER_PATH"});
  check.require(!c.log_dir.empty(), "LOG_DIR must not be empty", {"LOG_DIR"});
  const bool plain_name = std::all_of(c.run_id.begin(), c.run_id.end(), [](char ch) {
    return std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '_' || ch == '-';
  });
  check.require(plain_name && c.run_id != "." && c.run_id != "..",
                "RUN_ID must be a plain folder name inside LOG_DIR (letters, digits, '.', '_' and '-'; not '.' or '..'), or "
                "empty for one made of the date, time and SEED",
                {"RUN_ID"});
}

void validate(const ModelConfig& c, const Check& check) {
  check.positive("VOCAB_SIZE", c.vocab_size);
  check.require(c.vocab_size <= 65536, "VOCAB_SIZE must fit the uint16 shard format (<= 65536)", {"VOCAB_SIZE"});
  check.range("NUM_LAYERS", c.num_layers, 1, 1024);
  check.range("MODEL_DIM", c.model_dim, 1, 65536);
  check.range("NUM_HEADS", c.num_heads, 1, 65536);
  check.range("NUM_KV_HEADS", c.num_kv_heads, 1, 65536);
  check.range("MLP_MULT", c.mlp_mult, 1, 64);
  check.fraction("MLP_LEAKY_SLOPE", c.mlp_leaky_slope);
  check.require(c.model_dim % c.num_heads == 0, "MODEL_DIM must be divisible by NUM_HEADS", {"MODEL_DIM", "NUM_HEADS"});
  check.require(c.head_dim() % 2 == 0, "head_dim = MODEL_DIM / NUM_HEADS must be even for RoPE", {"MODEL_DIM", "NUM_HEADS"});
  check.require(c.num_heads % c.num_kv_heads == 0, "NUM_HEADS must be divisible by NUM_KV_HEADS", {"NUM_HEADS", "NUM_KV_HEADS"});
  check.require(c.tie_embeddings, "TIE_EMBEDDINGS=0 (an untied output head) is not implemented", {"TIE_EMBEDDINGS"});
  check.at_least("TIED_EMBED_INIT_STD", c.tied_embed_init_std, 0);
  check.at_least("ROPE_BASE", c.rope_base, 1, true);
  check.at_least("LOGIT_SOFTCAP", c.logit_softcap, 0, true);
  check.range("BIGRAM_VOCAB_SIZE", c.bigram_vocab_size, 0, 1 << 24);
  check.require(c.bigram_vocab_size != 1, "BIGRAM_VOCAB_SIZE must be 0 (off) or at least 2", {"BIGRAM_VOCAB_SIZE"});
  if (c.bigram_vocab_size > 0) check.range("BIGRAM_DIM", c.bigram_dim, 1, 65536);
  check.range("XSA_LAST_N", c.xsa_last_n, 0, c.num_layers);
  check.require(!c.loop_layers.on() || c.loop_layers.last < c.num_layers, "LOOP_LAYERS must name layers below NUM_LAYERS",
                {"LOOP_LAYERS", "NUM_LAYERS"});
  check.range("LOOP_REPEATS", c.loop_repeats, 1, 64);
  if (c.parallel_resid_from != -1) {
    check.range("PARALLEL_RESID_FROM", c.parallel_resid_from, 0, c.num_layers - 1);
    // The lanes start in the decoder: no encoder application (the first half,
    // looped or not) may be a parallel layer.
    for (const auto& order : {block_order(c.num_layers, {}, 1), block_order(c.num_layers, c.loop_layers, c.loop_repeats)})
      for (std::size_t j = 0; j < order.size() / 2; ++j)
        check.require(order[j] < c.parallel_resid_from,
                      "PARALLEL_RESID_FROM must be a decoder layer: layer " + std::to_string(order[j]) +
                          " runs in the encoder half of the block order",
                      {"PARALLEL_RESID_FROM", "NUM_LAYERS", "LOOP_LAYERS"});
  }
  check.fraction("LOOP_START_FRAC", c.loop_start_frac);
  check.require(!c.smear_bos_aware || c.model_dim >= kSmearGateDims,
                "SMEAR_BOS_AWARE reads the first 12 channels: MODEL_DIM must be >= 12", {"SMEAR_BOS_AWARE", "MODEL_DIM"});
  check.require(!c.attn_out_gate || c.model_dim >= kAttnGateDims,
                "ATTN_OUT_GATE reads the first 12 channels: MODEL_DIM must be >= 12", {"ATTN_OUT_GATE", "MODEL_DIM"});
  check.require(c.rope_dims >= 0 && c.rope_dims <= c.head_dim() && c.rope_dims % 2 == 0,
                "ROPE_DIMS must be even and in [0, head_dim = " + std::to_string(c.head_dim()) + "]", {"ROPE_DIMS"});
  check.range("ROPE_NTK_LEN", c.rope_ntk_len, 0, 1 << 24);
  check.require(c.rope_ntk_len == 0 || c.rotated_dims() > 2,
                "ROPE_NTK_LEN needs more than 2 rotated dims (its exponent is d/(d-2))", {"ROPE_NTK_LEN", "ROPE_DIMS"});
}

void validate(const ScheduleConfig& c, const Check& check) {
  check.range("ITERATIONS", c.iterations, 0);
  check.at_least("MAX_WALLCLOCK_SECONDS", c.max_wallclock_seconds, 0);
  check.range("WARMDOWN_ITERS", c.warmdown_iters, 0);
  check.below_one("LR_HOLD_FRAC", c.lr_hold_frac);
  check.fraction("MIN_LR", c.min_lr);
  check.require(c.max_wallclock_seconds <= 0 || c.training_seconds() > 0,
                "GPTQ_RESERVE_SECONDS must be below MAX_WALLCLOCK_SECONDS (the calibration's reserve would leave no training)",
                {"GPTQ_RESERVE_SECONDS", "MAX_WALLCLOCK_SECONDS"});
}

void validate(const TrainConfig& c, const Check& check) {
  check.range("WARMUP_STEPS", c.warmup_steps, 0);
  check.range("TRAIN_SEQ_LEN", c.train_seq_len, 1, 1 << 20);
  // docs/MODEL.md ("Data"): with grad_accum = 8 / world_size every rank's micro-batch is
  // TRAIN_BATCH_TOKENS / 8 tokens, which must be whole sequences.
  check.require(c.train_batch_tokens > 0 && c.train_batch_tokens % (8 * c.train_seq_len) == 0,
                "TRAIN_BATCH_TOKENS must be a positive multiple of 8 * TRAIN_SEQ_LEN = " + std::to_string(8 * c.train_seq_len),
                {"TRAIN_BATCH_TOKENS", "TRAIN_SEQ_LEN"});
  check.range("VAL_LOSS_EVERY", c.val_loss_every, 0);
  check.positive("VAL_BATCH_SIZE", c.val_batch_size);
  check.positive("TRAIN_LOG_EVERY", c.train_log_every);
  check.range("CHECKPOINT_EVERY", c.checkpoint_every, 0);
  check.at_least("CHECKPOINT_MINUTES", c.checkpoint_minutes, 0);
}

void validate(const OptimConfig& c, const Check& check) {
  check.at_least("MATRIX_LR", c.matrix_lr, 0);
  check.at_least("SCALAR_LR", c.scalar_lr, 0);
  check.at_least("TIED_EMBED_LR", c.tied_embed_lr, 0);
  check.fraction("MUON_MOMENTUM", c.muon_momentum);
  check.fraction("MUON_MOMENTUM_WARMUP_START", c.muon_momentum_warmup_start);
  check.range("MUON_MOMENTUM_WARMUP_STEPS", c.muon_momentum_warmup_steps, 0);
  check.range("MUON_BACKEND_STEPS", c.muon_backend_steps, 1, 100);
  check.at_least("MUON_WD", c.muon_wd, 0);
  check.below_one("BETA1", c.beta1);
  check.below_one("BETA2", c.beta2);
  for (const auto& [key, v] : {std::pair{"TIED_EMBED_BETA1", c.tied_embed_beta1}, {"TIED_EMBED_BETA2", c.tied_embed_beta2},
                               {"SCALAR_BETA1", c.scalar_beta1}, {"SCALAR_BETA2", c.scalar_beta2}})
    check.require(v < 1, std::string(key) + " must be below 1 (< 0: the shared BETA1/BETA2)", {key});
  check.at_least("ADAM_EPS", c.adam_eps, 0, true);
  check.at_least("ADAM_WD", c.adam_wd, 0);
  check.at_least("GRAD_CLIP_NORM", c.grad_clip_norm, 0);
}

void validate(const AveragingConfig& c, const Check& check) {
  check.fraction("SWA_START_FRAC", c.swa_start_frac);
  check.positive("SWA_EVERY", c.swa_every);
  check.fraction("EMA_DECAY", c.ema_decay);
}

void validate(const QatConfig& c, const Check& check) { check.fraction("QAT_START_FRAC", c.qat_start_frac); }

void validate(const ExportConfig& c, const Check& check) {
  check.fraction("PRUNE_FRAC", c.prune_frac);
  check.range("QUANT_PASSTHROUGH_NUMEL", c.quant_passthrough_numel, 0);
  check.positive("BUDGET_BYTES", c.budget_bytes);
  check.positive("GPTQ_TOKENS", c.gptq_tokens);
  check.at_least("GPTQ_RESERVE_SECONDS", c.gptq_reserve_seconds, 0);
  check.range("GPTQ_BLOCK", c.gptq_block, 1, 65536);
  check.at_least("GPTQ_DAMP", c.gptq_damp, 0);
  check.range("LQER_TENSORS", c.lqer_tensors, 0, 4096);
  check.range("LQER_RANK", c.lqer_rank, 1, 64);
  check.require(c.fit_margin_bytes >= 0 && c.fit_margin_bytes < c.budget_bytes, "FIT_MARGIN_BYTES must be in [0, BUDGET_BYTES)",
                {"FIT_MARGIN_BYTES", "BUDGET_BYTES"});
}

void validate(const EvalConfig& c, const Check& check) {
  check.range("EVAL_BATCH_SEQS", c.eval_batch_seqs, 1);
  check.range("EVAL_SEQ_LEN", c.eval_seq_len, 0, 1 << 20);  // 0: TRAIN_SEQ_LEN (fill_derived)
  check.require(c.eval_stride > 0 && (c.eval_seq_len == 0 || c.eval_stride <= c.eval_seq_len),
                "EVAL_STRIDE must be in [1, EVAL_SEQ_LEN]", {"EVAL_STRIDE", "EVAL_SEQ_LEN", "TRAIN_SEQ_LEN"});
  check.at_least("EVAL_BUDGET_SECONDS", c.eval_budget_seconds, 0);
  check.one_of("LOG_COMPAT", c.log_compat, log_compat_names());
  check.at_least("EVAL_TOKENS_LIMIT", c.eval_tokens_limit, 0);
}

void validate(const TttConfig& c, const Check& check) {
  check.range("TTT_RANK", c.ttt_rank, 1, 4096);
  check.at_least("TTT_ALPHA", c.ttt_alpha, 0, true);
  check.range("TTT_CHUNK", c.ttt_chunk, 1, 1 << 20);
  check.range("TTT_CONTEXT", c.ttt_context, 0, 1 << 20);  // 0: EVAL_SEQ_LEN (fill_derived)
  check.require(!c.ttt_enabled || c.ttt_context == 0 || c.ttt_context >= c.ttt_chunk, "TTT_CONTEXT must hold at least one chunk (TTT_CHUNK)",
                {"TTT_CONTEXT", "TTT_CHUNK", "EVAL_SEQ_LEN", "TRAIN_SEQ_LEN"});
  check.range("TTT_BATCH_DOCS", c.ttt_batch_docs, 1, 1 << 16);
  check.at_least("TTT_LR", c.ttt_lr, 0);
  check.below_one("TTT_BETA1", c.ttt_beta1);
  check.below_one("TTT_BETA2", c.ttt_beta2);
  check.at_least("TTT_EPS", c.ttt_eps, 0, true);
  check.at_least("TTT_WD", c.ttt_wd, 0);
  check.at_least("TTT_GLOBAL_LR", c.ttt_global_lr, 0);
  check.fraction("TTT_GLOBAL_MOMENTUM", c.ttt_global_momentum);
  check.at_least("TTT_GLOBAL_CLIP", c.ttt_global_clip, 0);
  check.range("TTT_GLOBAL_BATCH_SEQS", c.ttt_global_batch_seqs, 1, 1 << 16);
}

void validate(const RuntimeConfig& c, const Check& check) {
  check.one_of("DEVICE", c.device, {"auto", "cpu", "cuda"});
  check.one_of("PROGRESS", c.progress, {"auto", "on", "off"});
  check.range("NUM_THREADS", c.num_threads, 0, 4096);
  check.positive("DIST_TIMEOUT_SECONDS", c.dist_timeout_seconds);
  check.positive("MAIN_PHASE_TIMEOUT_SECONDS", c.main_phase_timeout_seconds);
}

}  // namespace

void validate_config(const Config& c, const std::map<std::string, std::string>* sources) {
  require_components(c);  // first: an absent component's own keys do not matter
  const Check check(c, sources);
  // Every integer key but SEED fits in 32 bits; the sections narrow that.
  for (const auto& k : config_keys())
    if (std::string_view(k.type) == "int" && std::string_view(k.name) != "SEED") {
      const std::int64_t v = std::stoll(k.get(c));
      check.require(v >= INT32_MIN && v <= INT32_MAX, std::string(k.name) + " must fit in 32 bits", {k.name});
    }
  validate(c.run, check);
  validate(c.model, check);
  validate(c.schedule, check);
  validate(c.train, check);
  validate(c.optim, check);
  validate(c.averaging, check);
  validate(c.qat, check);
  validate(c.export_, check);
  validate(c.eval, check);
  validate(c.ttt, check);
  validate(c.runtime, check);
}

void validate_model_config(const ModelConfig& model) {
  Config c;
  c.model = model;
  validate(c.model, Check(c, nullptr));
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

std::string describe_config_keys(KeySelection which) {
  // The keys most runs set, in --help; `pgolf config --list` documents all.
  static const std::set<std::string> common = {
      "DATA_PATH",      "TOKENIZER_PATH", "RUN_ID",         "LOG_DIR",        "SEED",
      "VOCAB_SIZE",     "NUM_LAYERS",     "MODEL_DIM",      "TRAIN_SEQ_LEN",  "TRAIN_BATCH_TOKENS",
      "ITERATIONS",     "MAX_WALLCLOCK_SECONDS", "WARMDOWN_ITERS", "MATRIX_LR",  "EVAL_STRIDE",
      "EVAL_TOKENS_LIMIT", "LOG_COMPAT",  "ARTIFACT_CODEC", "DEVICE",         "NUM_THREADS",
      "CHECKPOINT_MINUTES", "INIT_WEIGHTS", "TTT_ENABLED"};
  const Config defaults;
  std::ostringstream out;
  std::string group;
  for (const auto& k : config_keys()) {
    if (which == KeySelection::Common && !common.count(k.name)) continue;
    if (k.group != group) {
      group = k.group;
      out << (out.tellp() > 0 ? "\n" : "") << "[" << group << "]\n";
    }
    std::string def = get_config_value(defaults, k);
    out << "  " << k.name << " (" << k.type << ", default " << (def.empty() ? "\"\"" : def) << ")\n";
    if (*k.help) out << "      " << k.help << '\n';  // empty in the counted build (core/doc.h)
  }
  return out.str();
}

}  // namespace pgolf
