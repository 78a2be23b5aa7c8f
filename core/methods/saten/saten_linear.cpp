#include "methods/saten/saten_linear.h"

#include "methods/saten/saten_codec.h"

namespace tsm {

std::unique_ptr<LinearOp> make_saten_linear(const v1::CompressedTensor& t) {
  return std::make_unique<SatenLinear>(saten_from_proto(t));
}

}  // namespace tsm
