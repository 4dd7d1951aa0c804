#include "pgolf/app/commands.h"

#include <unistd.h>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <numeric>
#include <optional>

#include "pgolf/config/components.h"
#include "pgolf/export/artifact.h"
#include "pgolf/app/provenance.h"
#include "pgolf/train/checkpoint.h"
#include "pgolf/train/compliance.h"
#include "pgolf/train/fingerprint.h"
#include "pgolf/data/data.h"
#include "pgolf/dist/dist.h"
#include "pgolf/core/io.h"
#include "pgolf/core/run.h"
#include "pgolf/core/runtime.h"
#include "pgolf/core/signals.h"
#include "pgolf/export/submission.h"
#include "pgolf/data/tokenizer.h"
#include "pgolf/data/tokenizer_check.h"
#include "pgolf/train/train.h"
#include "pgolf/model/weights.h"

namespace pgolf {
namespace {

const char* process_env(const char* name) { return std::getenv(name); }

}  // namespace

Config resolve_config(const ConfigArgs& args, std::map<std::string, std::string>* sources) {
  return load_config(args.files, args.sets, process_env, sources);
}

int cmd_config(const ConfigArgs& args, bool list) {
  if (list) {
    std::cout << describe_config_keys();
    return 0;
  }
  std::map<std::string, std::string> sources;
  Config cfg = resolve_config(args, &sources);
  std::cout << format_config(cfg, &sources);
  return 0;
}

int cmd_info() {
  init_threads(0);
  std::cout << runtime_info();
  return 0;
}

namespace {

// `pgolf train --resume RUN_DIR`: RUN_DIR/config.env first, then the given
// files, environment and --set; the run stays in RUN_DIR whatever LOG_DIR
// and RUN_ID say.
Config resolve_resumed_config(const ConfigArgs& args, const std::string& run_dir,
                              std::map<std::string, std::string>* sources) {
  const std::filesystem::path dir = std::filesystem::path(run_dir).lexically_normal();
  const std::filesystem::path folder = dir.has_filename() ? dir : dir.parent_path();  // "logs/run/" -> "logs/run"
  const std::string env = (folder / "config.env").string();
  if (!std::filesystem::exists(env)) throw std::runtime_error("cannot resume '" + run_dir + "': it has no config.env (not a run folder)");
  ConfigArgs resumed = args;
  resumed.files.insert(resumed.files.begin(), env);
  Config cfg = resolve_config(resumed, sources);
  cfg.run.log_dir = folder.has_parent_path() ? folder.parent_path().string() : ".";
  cfg.run.run_id = folder.filename().string();
  if (!std::filesystem::exists(checkpoint_path(folder.string())))
    throw std::runtime_error("cannot resume '" + run_dir + "': it has no checkpoint.safetensors (the run wrote none: set "
                             "CHECKPOINT_EVERY or CHECKPOINT_MINUTES)");
  return cfg;
}

// The process group of a launcher's ranks, or one process.
std::unique_ptr<Dist> join_launch(const LaunchInfo& launch, const at::Device& device, const RuntimeConfig& runtime) {
  return launch.world_size > 1 ? std::make_unique<Dist>(launch, device, std::chrono::seconds(runtime.dist_timeout_seconds))
                               : std::make_unique<Dist>();
}

}  // namespace

int cmd_train(const ConfigArgs& args, const std::string& resume_dir, bool overwrite) {
  const FolderUse use = !resume_dir.empty() ? FolderUse::Resume : overwrite ? FolderUse::Overwrite : FolderUse::New;
  std::map<std::string, std::string> sources;
  Config cfg = resume_dir.empty() ? resolve_config(args, &sources) : resolve_resumed_config(args, resume_dir, &sources);
  const LaunchInfo launch = detect_launch(process_env);
  const int threads = init_threads(cfg.runtime.num_threads);
  const at::Device device = select_device(cfg.runtime.device, launch.local_rank);
  // Before the run folder is touched: a refused resume leaves its config.env as it was.
  std::optional<TrainState> resume;
  std::map<std::string, std::string> inputs;  // the data and tokenizer by content, read once when needed
  if (!resume_dir.empty() || launch.world_size > 1) inputs = input_identity(cfg);
  if (!resume_dir.empty()) {
    if constexpr (kHasCheckpoints) {
      resume = load_checkpoint(checkpoint_path(cfg.run.log_dir + "/" + cfg.run.run_id));
      check_resumable(*resume, cfg, launch.world_size, device.is_cuda() ? "cuda" : "cpu", inputs);
    } else {
      missing_component("CHECKPOINTS (--resume)");
    }
  }
  std::unique_ptr<Dist> dist = join_launch(launch, device, cfg.runtime);
  // Before any work: every rank has the same configuration, data and tokenizer.
  if (dist->world_size() > 1)
    check_same_fingerprints(dist->gather_strings("fingerprint", run_fingerprint(cfg, inputs)));
  // Every rank writes into rank 0's run folder name (RUN_ID may be a timestamp).
  cfg.run.run_id = dist->share("run_id", resolve_run_id(cfg));
  // Rank 0 takes the folder (new, resumed or overwritten) and holds its lock
  // for the run; a refusal stops every rank with rank 0's reason.
  std::unique_ptr<RunFolderLock> folder;
  std::string refused;
  if (dist->is_main()) {
    try {
      folder = std::make_unique<RunFolderLock>(cfg.run.log_dir + "/" + cfg.run.run_id, use);
    } catch (const std::exception& e) {
      refused = e.what();
    }
  }
  refused = dist->share("run folder refusal", refused);
  if (!refused.empty()) throw std::runtime_error(refused);
  RunLog log(cfg, dist->is_main() ? RunLog::Mode::Files : RunLog::Mode::Silent);
  const auto made_by = provenance(device, dist->world_size(), launch.launcher);
  std::string facts;
  for (const auto& [k, v] : made_by) facts += (facts.empty() ? "" : " ") + k + ":" + (v.empty() ? "?" : v);
  log.line("provenance: " + facts);
  log.metric("provenance", made_by);
  log.line("run: " + log.dir() + " launcher:" + launch.launcher + " world_size:" + std::to_string(launch.world_size) +
           " device:" + device.str() + " threads:" + std::to_string(threads));
  log.line("config:\n" + format_config(cfg, &sources));
  TrainResult r;
  const StopSignals signals;
  try {
    r = train(cfg, log, *dist, device, resume ? &*resume : nullptr, &signals);
  } catch (const std::exception& e) {
    log.error(error_message(e));
    throw;
  }
  if (r.stop_signal) return 128 + r.stop_signal;  // as a shell reports a process the signal ended
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "done: steps:%lld artifact:%s size:%llu bytes (with code; budget %llu) val_bpb:%.4f (sliding window)",
                static_cast<long long>(r.steps), r.exported.path.c_str(), static_cast<unsigned long long>(r.exported.total()),
                static_cast<unsigned long long>(cfg.export_.budget_bytes), r.score.val_bpb());
  log.line(buf + (cfg.eval.eval_tokens_limit > 0 ? " of at most the first " + std::to_string(cfg.eval.eval_tokens_limit) +
                                                       " validation tokens (EVAL_TOKENS_LIMIT): not the challenge score"
                                                 : std::string()));
  return 0;
}

namespace {

// The configuration for scoring or exporting a model file: what the file
// records (config/record.h) under the configuration given. A configured
// value that contradicts the record is an error naming each key, unless
// OVERRIDE_RECORDED=1; `notes` receives what the log should say about it.
Config config_for_model_file(const ConfigArgs& args, const ModelFile& file, std::vector<std::string>& notes) {
  const std::optional<ModelRecord>& record = file.record;
  const std::string& path = file.path;
  std::map<std::string, std::string> sources;
  Config cfg = load_config(args.files, args.sets, process_env, &sources, record ? &*record : nullptr);
  if (!record) {
    notes.push_back("'" + path + "' records no model configuration (written by an older pgolf): the configuration as given applies");
    return cfg;
  }
  std::string list;
  for (const std::string& c : record_conflicts(cfg, *record, sources)) list += (list.empty() ? "" : ", ") + c;
  if (list.empty()) return cfg;
  if (!cfg.eval.override_recorded)
    throw ConfigError("the configuration contradicts what the model file records: " + list +
                      ". A model file brings its own architecture and scoring keys: leave these keys unset, or set "
                      "OVERRIDE_RECORDED=1 for a deliberate experiment");
  notes.push_back("OVERRIDE_RECORDED=1: the configuration overrides the model file's record in " + list);
  return cfg;
}

}  // namespace

int cmd_eval(const ConfigArgs& args, const std::string& path) {
  std::vector<std::string> notes;
  const ModelFile file = read_model_file(path);
  Config cfg = config_for_model_file(args, file, notes);
  const LaunchInfo launch = detect_launch(process_env);
  init_threads(cfg.runtime.num_threads);
  const at::Device device = select_device(cfg.runtime.device, launch.local_rank);
  std::unique_ptr<Dist> dist = join_launch(launch, device, cfg.runtime);
  RunLog log(cfg, dist->is_main() ? RunLog::Mode::Console : RunLog::Mode::Silent);
  for (const std::string& note : notes) log.line("eval: " + note);
  GPT model(cfg.model, model_options_for(device, static_cast<std::uint64_t>(cfg.run.seed), cfg.runtime.fused_kernels));
  model.set_looped(true);  // with LOOP_LAYERS a trained model is scored looped, as its run scored it
  load_model_file(model, file);
  log.line("eval: " + path + " model_params:" + std::to_string(model.num_params()) +
           " world_size:" + std::to_string(dist->world_size()));
  const ScoringData data = load_scoring_data(cfg, device);
  // Before scoring: val_bpb counts bytes through the tokenizer, which must be the one that made the shards.
  const std::string skipped = check_tokenizer_unless_disabled(cfg.run.tokenizer_path, cfg.run.data_path, cfg.run.tokenizer_check);
  if (!skipped.empty()) log.line(skipped);
  const TrainingDataBan no_training_data("pgolf eval");
  // Timed as the challenge times it, as `pgolf train` does: the sliding window and TTT.
  double eval_ms = 0;
  if (file.is_artifact()) {
    eval_ms = score_artifact(model, cfg.eval, data, log, *dist).ms;
  } else {
    const auto t0 = std::chrono::steady_clock::now();
    score_prequant(model, cfg.eval, data, log, *dist);
    eval_ms = ms_since(t0);
  }
  const auto ttt_start = std::chrono::steady_clock::now();
  if (cfg.ttt.ttt_enabled) score_ttt(model, ttt_options(cfg), data, log, "final_ttt", *dist);
  eval_ms += ms_since(ttt_start);
  log.line(compliance_lines({check_eval_time(eval_ms, cfg.eval.eval_budget_seconds, cfg.ttt.ttt_enabled)}).front());
  return 0;
}

int cmd_export(const ConfigArgs& args, const std::string& weights, const std::string& output, double random_std) {
  std::vector<std::string> notes;
  std::optional<ModelFile> file;
  if (!weights.empty()) {
    file = read_model_file(weights);
    if (file->is_artifact())
      throw std::runtime_error("export --weights takes a .safetensors weights file; '" + weights +
                               "' is an artifact, already quantised (score it with pgolf eval)");
  }
  Config cfg = file ? config_for_model_file(args, *file, notes) : resolve_config(args);
  init_threads(cfg.runtime.num_threads);
  RunLog log(cfg, RunLog::Mode::Console);
  for (const std::string& note : notes) log.line("export: " + note);
  GPT model(cfg.model, model_options_for(at::kCPU, static_cast<std::uint64_t>(cfg.run.seed)));
  if (file) load_model_file(model, *file);
  std::string source = weights.empty() ? "initial weights (SEED=" + std::to_string(cfg.run.seed) + ")" : weights;
  if (random_std > 0) {
    at::NoGradGuard no_grad;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<std::uint64_t>(cfg.run.seed));
    for (const auto& p : model.parameters())
      if (p.tensor.dim() == 2 && !is_control_tensor(p.name))
        p.tensor.detach().copy_(at::normal(0.0, random_std, p.tensor.sizes(), gen, at::kFloat));
    source = "Gaussian matrices, std " + shortest_decimal(random_std) + " (SEED=" + std::to_string(cfg.run.seed) + ")";
  }
  log.line("export: " + source + " model_params:" + std::to_string(model.num_params()));
  export_submission(model, cfg, output, log);
  return 0;
}

}  // namespace pgolf
