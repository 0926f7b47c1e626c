// Shapes at a NeuronOp's boundary, as neuroncli/runtime/batching.py models them: the
// fixed-shape check and dynamic-batch sharding.  A client batch B against a compiled batch k
// runs ceil(B/k) shards of k rows, the last zero-padded; batch-axis outputs are joined and cut
// back to B rows, the others come from the first shard.  Messages match the runtime's.
#ifndef NEURONCLI_TFOP_SHARD_H_
#define NEURONCLI_TFOP_SHARD_H_

#include <cstdint>
#include <string>
#include <vector>

#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/tensor_shape.h"

namespace neuroncli {

using tensorflow::Status;

// The NeuronOp attributes the kernel uses.
struct OpSpec {
  std::string name;
  std::vector<tensorflow::DataType> input_dtypes, output_dtypes;
  std::vector<tensorflow::PartialTensorShape> input_shapes, output_shapes;
  std::vector<int> input_batch_axis, output_batch_axis;  // filled with -1 when absent

  // Counts agree, axes are -1 or 0, and every input has a fixed compiled shape.
  Status Validate();
};

// How one call is split.  batch < 0: no batch-axis input (one run, inputs as given).
struct BatchPlan {
  int64_t batch = -1;
  int64_t compiled = 0;
  int64_t shards = 1;
  bool sharded() const { return batch >= 0 && compiled > 0 && batch != compiled; }
};

Status CheckShapes(const OpSpec& spec, const std::vector<tensorflow::Tensor>& inputs,
                   BatchPlan* plan);
Status ShardInputs(tensorflow::OpKernelContext* ctx, const OpSpec& spec,
                   const std::vector<tensorflow::Tensor>& inputs, const BatchPlan& plan,
                   int64_t shard, std::vector<tensorflow::Tensor>* out);
Status MergeOutputs(tensorflow::OpKernelContext* ctx, const OpSpec& spec, const BatchPlan& plan,
                    const std::vector<std::vector<tensorflow::Tensor>>& results);
// A zero-row batch: outputs of the compiled shapes with 0 rows, nothing run.
Status EmptyOutputs(tensorflow::OpKernelContext* ctx, const OpSpec& spec);

}  // namespace neuroncli

#endif  // NEURONCLI_TFOP_SHARD_H_
