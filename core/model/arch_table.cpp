// The architecture tables (see arch_table.h). Names as Hugging Face transformers saves them.
#include "model/arch_table.h"

namespace tsm {

namespace {

const ArchSpec kGpt2{Arch::kGpt2, WeightLayout::kInOut, "transformer.", {
    {Role::kTokEmbed, "transformer.wte.weight"},
    {Role::kPosEmbed, "transformer.wpe.weight"},
    {Role::kFinalNormW, "transformer.ln_f.weight"},
    {Role::kFinalNormB, "transformer.ln_f.bias"},
    {Role::kLmHead, "lm_head.weight"},
    {Role::kAttnNormW, "transformer.h.{L}.ln_1.weight"},
    {Role::kAttnNormB, "transformer.h.{L}.ln_1.bias"},
    {Role::kQkvW, "transformer.h.{L}.attn.c_attn.weight"},
    {Role::kQkvB, "transformer.h.{L}.attn.c_attn.bias"},
    {Role::kOW, "transformer.h.{L}.attn.c_proj.weight"},
    {Role::kOB, "transformer.h.{L}.attn.c_proj.bias"},
    {Role::kMlpNormW, "transformer.h.{L}.ln_2.weight"},
    {Role::kMlpNormB, "transformer.h.{L}.ln_2.bias"},
    {Role::kUpW, "transformer.h.{L}.mlp.c_fc.weight"},
    {Role::kUpB, "transformer.h.{L}.mlp.c_fc.bias"},
    {Role::kDownW, "transformer.h.{L}.mlp.c_proj.weight"},
    {Role::kDownB, "transformer.h.{L}.mlp.c_proj.bias"},
}};

const ArchSpec kOpt{Arch::kOpt, WeightLayout::kOutIn, "", {
    {Role::kTokEmbed, "model.decoder.embed_tokens.weight"},
    {Role::kPosEmbed, "model.decoder.embed_positions.weight"},
    {Role::kProjectIn, "model.decoder.project_in.weight"},
    {Role::kProjectOut, "model.decoder.project_out.weight"},
    {Role::kFinalNormW, "model.decoder.final_layer_norm.weight"},
    {Role::kFinalNormB, "model.decoder.final_layer_norm.bias"},
    {Role::kLmHead, "lm_head.weight"},
    {Role::kAttnNormW, "model.decoder.layers.{L}.self_attn_layer_norm.weight"},
    {Role::kAttnNormB, "model.decoder.layers.{L}.self_attn_layer_norm.bias"},
    {Role::kQW, "model.decoder.layers.{L}.self_attn.q_proj.weight"},
    {Role::kQB, "model.decoder.layers.{L}.self_attn.q_proj.bias"},
    {Role::kKW, "model.decoder.layers.{L}.self_attn.k_proj.weight"},
    {Role::kKB, "model.decoder.layers.{L}.self_attn.k_proj.bias"},
    {Role::kVW, "model.decoder.layers.{L}.self_attn.v_proj.weight"},
    {Role::kVB, "model.decoder.layers.{L}.self_attn.v_proj.bias"},
    {Role::kOW, "model.decoder.layers.{L}.self_attn.out_proj.weight"},
    {Role::kOB, "model.decoder.layers.{L}.self_attn.out_proj.bias"},
    {Role::kMlpNormW, "model.decoder.layers.{L}.final_layer_norm.weight"},
    {Role::kMlpNormB, "model.decoder.layers.{L}.final_layer_norm.bias"},
    {Role::kUpW, "model.decoder.layers.{L}.fc1.weight"},
    {Role::kUpB, "model.decoder.layers.{L}.fc1.bias"},
    {Role::kDownW, "model.decoder.layers.{L}.fc2.weight"},
    {Role::kDownB, "model.decoder.layers.{L}.fc2.bias"},
}};

const ArchSpec kLlama{Arch::kLlama, WeightLayout::kOutIn, "", {
    {Role::kTokEmbed, "model.embed_tokens.weight"},
    {Role::kFinalNormW, "model.norm.weight"},
    {Role::kLmHead, "lm_head.weight"},
    {Role::kAttnNormW, "model.layers.{L}.input_layernorm.weight"},
    {Role::kQW, "model.layers.{L}.self_attn.q_proj.weight"},
    {Role::kQB, "model.layers.{L}.self_attn.q_proj.bias"},
    {Role::kKW, "model.layers.{L}.self_attn.k_proj.weight"},
    {Role::kKB, "model.layers.{L}.self_attn.k_proj.bias"},
    {Role::kVW, "model.layers.{L}.self_attn.v_proj.weight"},
    {Role::kVB, "model.layers.{L}.self_attn.v_proj.bias"},
    {Role::kOW, "model.layers.{L}.self_attn.o_proj.weight"},
    {Role::kOB, "model.layers.{L}.self_attn.o_proj.bias"},
    {Role::kMlpNormW, "model.layers.{L}.post_attention_layernorm.weight"},
    {Role::kUpW, "model.layers.{L}.mlp.up_proj.weight"},
    {Role::kUpB, "model.layers.{L}.mlp.up_proj.bias"},
    {Role::kGateW, "model.layers.{L}.mlp.gate_proj.weight"},
    {Role::kGateB, "model.layers.{L}.mlp.gate_proj.bias"},
    {Role::kDownW, "model.layers.{L}.mlp.down_proj.weight"},
    {Role::kDownB, "model.layers.{L}.mlp.down_proj.bias"},
}};

}  // namespace

const ArchSpec& arch_spec(Arch a) {
  switch (a) {
    case Arch::kGpt2: return kGpt2;
    case Arch::kOpt: return kOpt;
    case Arch::kLlama: return kLlama;
  }
  return kGpt2;
}

std::optional<std::string> tensor_name(const ArchSpec& spec, Role role, int64_t layer) {
  for (const auto& s : spec.slots) {
    if (s.role != role) continue;
    std::string name = s.pattern;
    if (auto p = name.find("{L}"); p != std::string::npos) name.replace(p, 3, std::to_string(layer));
    return name;
  }
  return std::nullopt;
}

}  // namespace tsm
