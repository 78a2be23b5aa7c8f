// The tensors of an upload as a job sees them: the listing stored with the upload
// (UploadRecord.tensors_json: [{name, dtype, shape, default?}]), the job's selection from it
// (exact names or full-match regexes), and loading the selected tensors from the stored blob
// (memory-mapped; a model directory from its extracted copy).
#pragma once
#include <string>
#include <vector>

#include "common/tensor.h"
#include "store/store.h"

namespace tsm::server {

struct TensorInfo {
  std::string name, dtype;
  std::vector<int64_t> shape;
  bool is_default = false;   ///< picked when a job names no tensors (a model's token embedding)
  int64_t rows() const;      ///< matrix view as Tensor::to_matrix: 2-D as is, 1-D one row, n-D (shape[0], rest)
  int64_t cols() const;
};

std::vector<TensorInfo> upload_tensors(const UploadRecord& u);
/// Throws tsm::ParamError("tensors", ...) naming what did not match and what exists.
std::vector<TensorInfo> select_tensors(const UploadRecord& u, const std::vector<std::string>& selectors);
/// The tensor regex of a whole-model job: its `tensors` joined with '|', or the model's token
/// embedding when it names none.
std::string whole_model_regex(const UploadRecord& u, const std::vector<std::string>& tensors);
/// `blob_path`: the upload's blob; `model_dir`: where a tar upload was extracted.
std::vector<Tensor> load_tensors(const UploadRecord& u, const std::string& blob_path, const std::string& model_dir,
                                 const std::vector<TensorInfo>& which);

}  // namespace tsm::server
