#include "pgolf/app/submit.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <stdexcept>

#include "pgolf/core/io.h"
#include "pgolf/core/text.h"
#include "pgolf/eval/stats.h"
#include "pgolf/export/script.h"
#include "pgolf/export/tensor_plan.h"

namespace pgolf {
namespace {

namespace fs = std::filesystem;

// A field of the run's provenance event (app/provenance.h); "?" without it.
std::string provenance_field(const RunResult& r, const std::string& key) {
  const auto it = r.provenance.find(key);
  return it == r.provenance.end() ? std::string("?") : it->second;
}

std::string hardware(const RunResult& r) { return provenance_field(r, "world_size") + "x" + provenance_field(r, "device_name"); }

// One run folder as a submission reads it: its results, configuration and
// counted code.
struct SubmittedRun {
  std::string dir;
  RunResult result;
  Config cfg;
  std::string script;  // train_gpt.py
};

std::string today_utc() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
  return buf;
}

SubmittedRun read_submitted_run(const std::string& dir) {
  if (!fs::is_directory(dir)) throw std::runtime_error("'" + dir + "' is not a run folder of `pgolf train`");
  SubmittedRun run{dir, read_run_result(dir), Config{}, ""};
  const std::string where = "'" + dir + "'";
  for (const char* file : {"config.env", "train.log", "train_gpt.py"})
    if (!fs::is_regular_file(fs::path(dir) / file))
      throw std::runtime_error(where + " has no " + file + (std::string(file) == "train_gpt.py"
                                                                ? ": it was trained by a pgolf before 0.9.0, which wrote its "
                                                                  "code as pgolf-src.tar.br; train it again"
                                                                : ""));
  if (run.result.eval_ms < 0)
    throw std::runtime_error(where + ": its final event has no eval_ms (a pgolf before 0.9.0 made it): train it again");
  if (run.result.compliance.empty())
    throw std::runtime_error(where + ": metrics.jsonl has no compliance event (a pgolf before 0.9.0 made it): train it again");
  for (const auto& [rule, verdict] : run.result.compliance)
    if (verdict != "pass")
      throw std::runtime_error(where + " fails the rule '" + rule + "' (its train.log's compliance: lines say why; docs/RULES.md): "
                               "such a run is no valid submission");
  apply_config_file(run.cfg, (fs::path(dir) / "config.env").string());
  run.script = read_file((fs::path(dir) / "train_gpt.py").string());
  return run;
}

// Every run must be the same configuration and code but for the seed.
void require_one_configuration(const std::vector<SubmittedRun>& runs) {
  std::set<std::int64_t> seeds;
  const SubmittedRun& first = runs.front();
  for (const SubmittedRun& run : runs) {
    if (!seeds.insert(run.cfg.run.seed).second)
      throw std::runtime_error("two runs have SEED=" + std::to_string(run.cfg.run.seed) + " ('" + run.dir +
                               "' is one): each run of a submission is another seed");
    if (run.script == first.script) continue;
    const std::string a = recorded_config(first.cfg), b = recorded_config(run.cfg);
    if (a != b)
      throw std::runtime_error("'" + run.dir + "' and '" + first.dir + "' differ in their configuration:\n  " + first.dir +
                               ":\n" + a + "  " + run.dir + ":\n" + b +
                               "a submission's runs differ in SEED only (and RUN_ID, LOG_DIR)");
    throw std::runtime_error("'" + run.dir + "' and '" + first.dir + "' were trained by different pgolf builds (" +
                             provenance_field(run.result, "commit") + " and " + provenance_field(first.result, "commit") +
                             "): their train_gpt.py differ; train every seed with one build");
  }
}

// README.md of the records folder, from the runs and their submission.json (`summary`).
std::string readme(const SubmitOptions& o, const std::vector<SubmittedRun>& runs, const nlohmann::ordered_json& summary) {
  const SampleSummary l{runs.size(), summary["val_loss"].get<double>(), summary["val_loss_std"].get<double>()};
  const SampleSummary b{runs.size(), summary["val_bpb"].get<double>(), summary["val_bpb_std"].get<double>()};
  const std::uint64_t code = runs.front().script.size();
  std::string md = "# " + o.name + "\n\n";
  md += o.author + " (@" + o.github_id + "), " + summary["date"].get<std::string>() + ", " + o.track +
        strprintf(": **val_bpb %.8f** (std %.8f, val_loss %.8f nats) over %zu seed%s", b.mean, b.std, l.mean, runs.size(),
                  runs.size() > 1 ? "s" : "") +
        ", trained and scored with pgolf on " + hardware(runs.front().result) + ".\n\n";
  md += "## Results\n\n| seed | val_loss | val_bpb | steps | train s | eval s | artifact bytes | code bytes | total bytes |\n"
        "|---|---|---|---|---|---|---|---|---|\n";
  for (const SubmittedRun& r : runs)
    md += strprintf("| %lld | %.8f | %.8f | %lld | %.1f | %.1f | %lld | %llu | %lld |\n", static_cast<long long>(r.cfg.run.seed),
                    r.result.val_loss, r.result.val_bpb, static_cast<long long>(r.result.steps), r.result.train_time_ms / 1000,
                    r.result.eval_ms / 1000, static_cast<long long>(r.result.artifact_bytes),
                    static_cast<unsigned long long>(code), static_cast<long long>(r.result.total_bytes));
  md += strprintf("| mean (std) | %.8f (%.8f) | %.8f (%.8f) | | | | | | |\n\n", l.mean, l.std, b.mean, b.std);
  md += "Scores are the sliding-window evaluation of the artifact read back (`final_sliding_window_exact` in each "
        "train_seed*.log). `pgolf compare` tests these runs against another set (one-sided Welch t-test of a "
        "0.005-nat improvement, the bar for a record).\n\n";
  md += "## Compliance\n\nEvery run passed each check pgolf makes at its end (the `compliance:` lines of its log):\n\n";
  for (const auto& [rule, verdict] : runs.front().result.compliance) md += "- " + rule + ": " + verdict + "\n";
  md += "\n## Techniques\n\n";
  for (const auto& t : summary["techniques"]) md += "- " + t.get<std::string>() + "\n";
  md += "\n## Configuration\n\nThe keys that differ from pgolf's defaults (also in train_gpt.py; SEED is set per run):\n\n```\n" +
        recorded_config(runs.front().cfg) + "```\n\n";
  md += "## Reproducing\n\n`train_gpt.py` (" + std::to_string(code) +
        " bytes, the code counted in the total) holds pgolf's minified C++ source (its train, eval and export path) "
        "as an xz tar (raw bytes in a latin-1 string literal), and the configuration. Run in this folder it unpacks the source, builds pgolf against the "
        "installed PyTorch and trains:\n\n```\nSEED=" + std::to_string(runs.front().cfg.run.seed) +
        " torchrun --standalone --nproc_per_node=8 train_gpt.py\n```\n\n"
        "The build needs cmake (3.25 or newer), a C++17 compiler, PyTorch " + provenance_field(runs.front().result, "libtorch") +
        " and, on Debian or Ubuntu:\n\n```\napt-get install build-essential cmake ninja-build libzstd-dev zlib1g-dev "
        "liblzma-dev libbrotli-dev libarchive-dev libsentencepiece-dev libcli11-dev nlohmann-json3-dev libgloo-dev\n```\n\n"
        "and the CUDA toolkit for the GPU path. DATA_PATH and TOKENIZER_PATH are read relative to the folder it runs in "
        "(override them in the environment). Made by pgolf " + provenance_field(runs.front().result, "pgolf") + " commit " +
        provenance_field(runs.front().result, "commit") + ".\n";
  return md;
}

}  // namespace

std::vector<std::string> techniques(const Config& cfg) {
  const ModelConfig& m = cfg.model;
  std::vector<std::string> t;
  t.push_back(std::to_string(m.num_layers) + " layers, width " + std::to_string(m.model_dim) + ", " +
              std::to_string(m.num_heads) + " query / " + std::to_string(m.num_kv_heads) + " KV heads (GQA), MLP " +
              std::to_string(m.mlp_mult) + "x, vocabulary " + std::to_string(m.vocab_size));
  t.push_back(std::string("SmearGate") + (m.smear_bos_aware ? " (BOS-aware)" : "") + ", U-Net skips" +
              (m.skip_gates ? " (gated)" : ""));
  if (m.bigram_vocab_size > 0)
    t.push_back("BigramHash " + std::to_string(m.bigram_vocab_size) + " x " + std::to_string(m.bigram_dim));
  if (m.xsa_last_n > 0) t.push_back("XSA in the last " + std::to_string(m.xsa_last_n) + " blocks");
  if (m.loop_layers.on())
    t.push_back("depth recurrence: layers " + format_value(m.loop_layers) + " run " + std::to_string(m.loop_repeats) + " times");
  if (m.parallel_resid_from >= 0) t.push_back("parallel residuals from layer " + std::to_string(m.parallel_resid_from));
  if (m.attn_out_gate) t.push_back("attention output gate");
  t.push_back("Muon (matrices, momentum " + format_value(cfg.optim.muon_momentum) + ", weight decay " +
              format_value(cfg.optim.muon_wd) + ") and AdamW; seq " + std::to_string(cfg.train.train_seq_len) + ", batch " +
              std::to_string(cfg.train.train_batch_tokens) + " tokens");
  if (cfg.averaging.swa_enabled)
    t.push_back("SWA every " + std::to_string(cfg.averaging.swa_every) + " steps from " +
                format_value(cfg.averaging.swa_start_frac) + " of the run");
  if (cfg.averaging.ema_enabled) t.push_back("EMA, decay " + format_value(cfg.averaging.ema_decay));
  if (cfg.qat.qat_enabled) t.push_back("late QAT from " + format_value(cfg.qat.qat_start_frac) + " of the run");
  t.push_back("export: prune " + format_value(cfg.export_.prune_frac) + ", MLP " + format_tensor_plan(cfg.export_.quant_mlp) +
              ", attention " + format_tensor_plan(cfg.export_.quant_attn) + ", " + codec_name(cfg.export_.artifact_codec));
  if (uses_gptq(cfg.export_))
    t.push_back("GPTQ on " + std::to_string(cfg.export_.gptq_tokens) + " training tokens within the training time");
  t.push_back("sliding-window evaluation, stride " + std::to_string(cfg.eval.eval_stride));
  if (cfg.ttt.ttt_enabled) t.push_back("score-first test-time training (LoRA rank " + std::to_string(cfg.ttt.ttt_rank) + ")");
  return t;
}

std::string submission_json(const SubmitOptions& o, const std::vector<RunResult>& runs, std::uint64_t code_bytes,
                            const Config& cfg) {
  std::vector<double> loss, bpb;
  nlohmann::ordered_json seeds = nlohmann::ordered_json::array(), results = nlohmann::ordered_json::object();
  std::int64_t largest = 0;
  for (const RunResult& r : runs) {
    loss.push_back(r.val_loss);
    bpb.push_back(r.val_bpb);
    seeds.push_back(std::stoll(r.seed));  // read_seed(): the runs of a submission all have config.env
    largest = std::max(largest, r.total_bytes);
    results[r.seed] = {{"val_loss", r.val_loss},
                       {"val_bpb", r.val_bpb},
                       {"steps", r.steps},
                       {"artifact_bytes", r.artifact_bytes},
                       {"code_bytes", code_bytes},
                       {"total_bytes", r.total_bytes},
                       {"train_time_s", std::round(r.train_time_ms) / 1000},
                       {"eval_time_s", std::round(r.eval_ms) / 1000}};
  }
  const SampleSummary l = summarize(loss), b = summarize(bpb);
  nlohmann::ordered_json j;
  j["author"] = o.author;
  j["github_id"] = o.github_id;
  j["name"] = o.name;
  j["date"] = o.date.empty() ? today_utc() : o.date;
  j["track"] = o.track;
  j["val_bpb"] = b.mean;
  j["val_bpb_std"] = b.std;
  j["val_loss"] = l.mean;
  j["val_loss_std"] = l.std;
  j["seeds"] = seeds;
  j["seed_results"] = results;
  j["bytes_total"] = largest;
  j["bytes_code"] = code_bytes;
  j["hardware"] = hardware(runs.front());
  j["techniques"] = techniques(cfg);
  j["pgolf"] = provenance_field(runs.front(), "pgolf") + " commit " + provenance_field(runs.front(), "commit");
  return j.dump(2) + "\n";
}

int cmd_submit(const SubmitOptions& o) {
  if (o.runs.empty()) throw std::invalid_argument("submit needs at least one run folder");
  for (const auto& [flag, value] : {std::pair<const char*, const std::string&>{"--name", o.name}, {"--author", o.author},
                                    {"--github-id", o.github_id}})
    if (value.empty()) throw std::invalid_argument(std::string("submit needs ") + flag + " (submission.json records it)");
  if (!o.date.empty() && !std::regex_match(o.date, std::regex("[0-9]{4}-[0-9]{2}-[0-9]{2}")))
    throw std::invalid_argument("--date '" + o.date + "' is not YYYY-MM-DD");
  if (fs::exists(o.output) && !(fs::is_directory(o.output) && fs::is_empty(o.output)))
    throw std::runtime_error("'" + o.output + "' exists and is not an empty folder: choose a new --output folder");
  std::vector<SubmittedRun> runs;
  for (const std::string& dir : o.runs) runs.push_back(read_submitted_run(dir));
  std::sort(runs.begin(), runs.end(), [](const SubmittedRun& a, const SubmittedRun& b) { return a.cfg.run.seed < b.cfg.run.seed; });
  require_one_configuration(runs);
  std::vector<RunResult> results;
  for (const SubmittedRun& r : runs) results.push_back(r.result);

  SubmitOptions dated = o;
  if (dated.date.empty()) dated.date = today_utc();
  const std::string json = submission_json(dated, results, runs.front().script.size(), runs.front().cfg);
  // Written into a sibling folder, then renamed: the records folder appears whole or not at all.
  const std::string tmp = temp_path_for(o.output);
  fs::remove_all(tmp);
  make_dirs(tmp);
  write_file_atomic(tmp + "/train_gpt.py", runs.front().script);
  write_file_atomic(tmp + "/submission.json", json);
  const nlohmann::ordered_json summary = nlohmann::ordered_json::parse(json);
  write_file_atomic(tmp + "/README.md", readme(dated, runs, summary));
  for (const SubmittedRun& r : runs)
    write_file_atomic(tmp + "/train_seed" + std::to_string(r.cfg.run.seed) + ".log",
                      read_file((fs::path(r.dir) / "train.log").string()));
  if (fs::exists(o.output)) fs::remove(o.output);  // the empty folder checked above
  fs::rename(tmp, o.output);

  std::cout << "submit: " << o.output << ": README.md, submission.json, train_gpt.py (" << runs.front().script.size()
            << " bytes), " << runs.size() << " train log" << (runs.size() > 1 ? "s" : "") << "; val_bpb "
            << strprintf("%.8f", summary["val_bpb"].get<double>()) << " (std " << strprintf("%.8f", summary["val_bpb_std"].get<double>())
            << ") over " << runs.size() << " seed" << (runs.size() > 1 ? "s" : "") << "\n";
  if (provenance_field(results.front(), "world_size") != "8" ||
      provenance_field(results.front(), "device_name").find("H100") == std::string::npos)
    std::cout << "submit: note: trained on " << hardware(results.front())
              << ", not the challenge's 8xH100: its times do not show the 600 s rules hold there\n";
  return 0;
}

}  // namespace pgolf
