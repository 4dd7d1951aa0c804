#include "pgolf/commands.h"

#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "pgolf/bench.h"
#include "pgolf/data.h"
#include "pgolf/run.h"
#include "pgolf/runtime.h"
#include "pgolf/tokenizer.h"
#include "pgolf/train.h"

namespace pgolf {

Config resolve_config(const ConfigArgs& args, std::map<std::string, std::string>* sources) {
  return load_config(args.files, args.sets, [](const char* name) { return std::getenv(name); }, sources);
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

int cmd_tokenizer(const CorpusOptions& corpus, int vocab_size, const std::string& output) {
  DocumentReader reader(corpus);
  std::int64_t docs = 0;
  auto next = [&](std::string& d) {
    if (!reader.next(d)) return false;
    ++docs;
    return true;
  };
  train_tokenizer(next, vocab_size, output, available_cores());
  Tokenizer tok(output);
  std::cout << "tokenizer: " << output << " pieces:" << tok.vocab_size() << " trained_on_docs:" << docs << "\n";
  return 0;
}

int cmd_shard(const CorpusOptions& corpus, const std::string& tokenizer, const ShardOptions& opts) {
  Tokenizer tok(tokenizer);
  DocumentReader reader(corpus);
  ShardStats stats = make_shards(reader, tok, opts);
  std::cout << "shards: " << opts.output_dir << "\n" << format_stats(stats);
  return 0;
}

int cmd_train(const ConfigArgs& args) {
  std::map<std::string, std::string> sources;
  Config cfg = resolve_config(args, &sources);
  const int threads = init_threads(cfg.num_threads);
  RunLog log(cfg);
  log.line("run: " + log.dir() + " threads:" + std::to_string(threads));
  log.line("config:\n" + format_config(cfg, &sources));
  TrainResult r = train(cfg, log);
  log.line("done: steps:" + std::to_string(r.steps) + " val_bpb:" + std::to_string(r.final_eval.val_bpb()) +
           " weights:" + r.weights_path);
  return 0;
}

int cmd_bench(const ConfigArgs& args, int steps, int warmup) {
  Config cfg = resolve_config(args);
  const int threads = init_threads(cfg.num_threads);
  std::cout << "bench: NUM_LAYERS=" << cfg.num_layers << " MODEL_DIM=" << cfg.model_dim
            << " TRAIN_BATCH_TOKENS=" << cfg.train_batch_tokens << " TRAIN_SEQ_LEN=" << cfg.train_seq_len
            << " threads:" << threads << std::endl;
  std::cout << format_bench(run_bench(cfg, steps, warmup));
  return 0;
}

int cmd_data(const ConfigArgs& args) {
  Config cfg = resolve_config(args);
  std::int64_t train_tokens = 0;
  std::vector<std::int64_t> counts(static_cast<std::size_t>(cfg.vocab_size), 0);
  auto train = shard_files(train_pattern(cfg.data_path));
  for (const auto& f : train) {
    Shard s(f);
    train_tokens += static_cast<std::int64_t>(s.num_tokens());
    for (std::size_t i = 0; i < s.num_tokens(); ++i) {
      if (s.tokens()[i] >= cfg.vocab_size)
        throw std::runtime_error("shard '" + f + "' holds token id " + std::to_string(s.tokens()[i]) +
                                 " >= VOCAB_SIZE=" + std::to_string(cfg.vocab_size));
      ++counts[s.tokens()[i]];
    }
  }
  auto val = load_validation_tokens(val_pattern(cfg.data_path), cfg.train_seq_len);
  Tokenizer tok(cfg.tokenizer_path);
  ByteLuts luts = build_byte_luts(tok, static_cast<int>(cfg.vocab_size));
  // The val_bpb denominator: bytes of every scored target (positions 1..N-1).
  std::int64_t val_bytes = 0;
  for (std::size_t i = 1; i < val.size(); ++i) val_bytes += luts.token_bytes(val[i - 1], val[i]);
  std::cout << "data: " << cfg.data_path << "\n"
            << "train: shards:" << train.size() << " tokens:" << train_tokens << "\n"
            << "val: scored_tokens:" << val.size() - 1 << " bytes:" << val_bytes
            << " bytes_per_token:" << static_cast<double>(val_bytes) / static_cast<double>(val.size() - 1) << "\n"
            << "unigram_baseline val_bpb:" << unigram_bpb(counts, val, luts) << "\n"
            << "tokenizer: " << cfg.tokenizer_path << " pieces:" << tok.vocab_size() << "\n";
  return 0;
}

}  // namespace pgolf
