// pgolf: wires the subcommands of src/app/commands.cpp to the command line,
// and in the full build those of src/app/tools.cpp (PGOLF_TOOLS, CMakeLists.txt).
#include <CLI/CLI.hpp>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "pgolf/app/cli_options.h"
#include "pgolf/app/commands.h"
#include "pgolf/app/provenance.h"
#include "pgolf/dist/dist.h"
#include "pgolf/core/runtime.h"
#include "pgolf/core/doc.h"
#ifdef PGOLF_TOOLS
#include "pgolf/app/tools.h"
#endif

using pgolf::add_config_options;

int main(int argc, char** argv) {
  CLI::App app{PGOLF_DOC("pgolf: train, compress and score a parameter-golf language model (see README.md)")};
  app.set_version_flag("--version", [] { return pgolf::version_text(); },
                       PGOLF_DOC("print pgolf's version, the commit and checksum of its sources, and the LibTorch and CUDA it was built with"));
  app.require_subcommand(1);

  pgolf::ConfigArgs cfg_args;
  bool list = false;
  auto* config = app.add_subcommand("config", PGOLF_DOC("print the resolved configuration and where each value came from"));
  add_config_options(config, cfg_args);
  config->add_flag("--list", list, PGOLF_DOC("document every key instead"));

  auto* info = app.add_subcommand("info", PGOLF_DOC("print the LibTorch version, CUDA support and thread count"));

  auto* train = app.add_subcommand("train", PGOLF_DOC("train the configured model and save its weights under LOG_DIR/RUN_ID "
                                             "(SIGINT/Ctrl-C or SIGTERM: stop after the current step, save the weights "
                                             "and, when checkpoints are on, a checkpoint; exit 130 or 143)"));
  add_config_options(train, cfg_args);
  train->add_option_function<std::string>(
           "--init-weights", [&](const std::string& f) { cfg_args.sets.push_back("INIT_WEIGHTS=" + f); },
           PGOLF_DOC("start from this .safetensors file (same as --set INIT_WEIGHTS=FILE)"))
      ->check(CLI::ExistingFile);
  std::string resume_dir;
  train->add_option("--resume", resume_dir,
                    PGOLF_DOC("continue the run in RUN_DIR from its checkpoint.safetensors (CHECKPOINT_EVERY, CHECKPOINT_MINUTES), "
                    "e.g. after a crash: RUN_DIR/config.env is read before --config and --set, keys that change "
                    "results must keep their values, and logs go on in RUN_DIR"))
      ->type_name("RUN_DIR")
      ->check(CLI::ExistingDirectory);
  bool overwrite = false;
  train->add_flag("--overwrite", overwrite,
                  PGOLF_DOC("replace an existing run folder LOG_DIR/RUN_ID (its files are removed first); without it a new run "
                  "refuses a folder that exists"))
      ->excludes("--resume");

  std::string model_path;
  auto* eval = app.add_subcommand("eval", PGOLF_DOC("score an artifact (or .safetensors weights) with the sliding-window evaluation"));
  eval->add_option("path", model_path,
                   PGOLF_DOC("artifact or .safetensors file; it records its model and scoring keys (the model section, "
                   "TRAIN_SEQ_LEN, EVAL_SEQ_LEN, EVAL_STRIDE), which apply without a config; a config that sets "
                   "them otherwise is refused unless OVERRIDE_RECORDED=1"))
      ->required()
      ->check(CLI::ExistingFile);
  add_config_options(eval, cfg_args);

  std::string export_weights, export_output;
  auto* exp = app.add_subcommand("export", PGOLF_DOC("prune, quantise and pack weights into an artifact"));
  exp->add_option("--weights", export_weights,
                  PGOLF_DOC(".safetensors to export (default: the initial weights, for sizing); the model keys it records apply "
                  "as with `pgolf eval`"))
      ->check(CLI::ExistingFile);
  exp->add_option("--output", export_output, PGOLF_DOC("artifact file to write"))->required();
  double export_random_std = 0;
  exp->add_option("--random-std", export_random_std,
                  PGOLF_DOC("for sizing: replace every matrix by Gaussian rows of this standard deviation (seeded by SEED)"))
      ->check(CLI::PositiveNumber);
  add_config_options(exp, cfg_args);

  std::vector<std::string> args(argv, argv + argc);
#ifdef PGOLF_TOOLS
  const auto run_tool = pgolf::add_tool_commands(app, cfg_args);
  pgolf::mark_compare_separator(args);
#endif
  std::vector<char*> arg_pointers;
  for (std::string& a : args) arg_pointers.push_back(a.data());
  CLI11_PARSE(app, argc, arg_pointers.data());
  try {
    if (*config) return pgolf::cmd_config(cfg_args, list);
    if (*info) return pgolf::cmd_info();
    if (*train) return pgolf::cmd_train(cfg_args, resume_dir, overwrite);
    if (*eval) return pgolf::cmd_eval(cfg_args, model_path);
    if (*exp) return pgolf::cmd_export(cfg_args, export_weights, export_output, export_random_std);
#ifdef PGOLF_TOOLS
    if (const auto code = run_tool()) return *code;
#endif
  } catch (const pgolf::DistError& e) {
    // A peer is dead or hung: leave without running the process group's
    // destructors, which would wait on it.
    std::cerr << "pgolf: error: " << e.what() << std::endl;
    std::cout.flush();
    std::_Exit(1);
  } catch (const std::exception& e) {
    std::cerr << "pgolf: error: " << pgolf::error_message(e) << "\n";
    return 1;
  }
  return 0;
}
