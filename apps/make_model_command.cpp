// `pagedkv make-model`: writes a deterministic random model (config.json + model.safetensors)
// from a preset config (pagedkv::make_model).
#include <fmt/format.h>

#include <filesystem>

#include "commands.h"
#include "pagedkv/model/model_maker.h"

namespace pagedkv::cli {

namespace {

constexpr const char* kMakeModelFooter =
    R"(Presets (random weights with the shapes of the named models):
  tiny          Llama, vocab 384, hidden 256, 4 layers, 4 heads / 2 KV heads, untied
                head, llama3 RoPE scaling; ~3.3M parameters
  tiny-qwen2    the same sizes as Qwen2: q/k/v biases, tied head, rope_theta 1e6
  smollm-135m   SmolLM-135M shapes (30 layers, hidden 576, tied head)
  llama-3.2-1b  Llama-3.2-1B shapes (16 layers, hidden 2048, vocab 128256, tied head)
The same preset, seed and dtype give the same bytes on every machine (docs/rules.md rule 56).)";

}  // namespace

CLI::App* add_make_model_command(CLI::App& app, MakeModelArgs& args) {
  CLI::App* cmd = app.add_subcommand(
      "make-model", "Write a deterministic random model (config.json + model.safetensors).");
  cmd->add_option("--preset", args.preset,
                  "Model shape: tiny, tiny-qwen2, smollm-135m, "
                  "llama-3.2-1b (default tiny).")
      ->check(CLI::IsMember(model_presets()));
  cmd->add_option("--seed", args.seed, "Random seed (default 0).");
  cmd->add_option("--dtype", args.dtype, "Weight dtype: f32 or bf16 (default f32).")
      ->check(CLI::IsMember({"f32", "bf16"}));
  cmd->add_option("out_dir", args.out_dir, "Directory to write (created if missing).")->required();
  cmd->footer(kMakeModelFooter);
  return cmd;
}

int run_make_model(const MakeModelArgs& a) {
  const ModelConfig config = preset_config(a.preset);
  const DType dtype = a.dtype == "bf16" ? DType::kBFloat16 : DType::kFloat32;
  make_model(config, a.seed, dtype, a.out_dir);
  const auto bytes =
      static_cast<int64_t>(std::filesystem::file_size(a.out_dir + "/model.safetensors") +
                           std::filesystem::file_size(a.out_dir + "/config.json"));
  fmt::print("{}: preset {}, seed {}, {}: {} parameters, {} bytes written\n", a.out_dir, a.preset,
             a.seed, dtype_name(dtype), grouped(config.num_parameters()), grouped(bytes));
  return 0;
}

}  // namespace pagedkv::cli
