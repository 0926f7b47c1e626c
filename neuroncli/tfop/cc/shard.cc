// Dynamic-batch sharding and the shape checks of the NeuronOp kernel (see shard.h).
#include "shard.h"

#include <algorithm>
#include <cstring>

#include "tensorflow/core/framework/types.h"
#include "tensorflow/core/platform/tstring.h"

namespace neuroncli {
namespace {

using tensorflow::DataType;
using tensorflow::Tensor;
using tensorflow::TensorShape;
namespace errors = tensorflow::errors;

// "(1, 3)", "(3,)", "(?, 3)": the runtime's fmt_shape.
std::string Format(const std::vector<int64_t>& dims) {
  std::string out = "(";
  for (size_t i = 0; i < dims.size(); ++i) {
    out += (i ? ", " : "") + (dims[i] < 0 ? std::string("?") : std::to_string(dims[i]));
  }
  return out + (dims.size() == 1 ? ",)" : ")");
}

std::vector<int64_t> Dims(const tensorflow::PartialTensorShape& shape) {
  std::vector<int64_t> dims;
  for (int i = 0; i < shape.dims(); ++i) dims.push_back(shape.dim_size(i));
  return dims;
}

std::vector<int64_t> Dims(const Tensor& tensor) {
  std::vector<int64_t> dims;
  for (int i = 0; i < tensor.dims(); ++i) dims.push_back(tensor.dim_size(i));
  return dims;
}

std::string Where(const OpSpec& spec, size_t index) {
  return "NeuronOp " + spec.name + " input " + std::to_string(index);
}

Status Axes(std::vector<int>* axes, size_t count, const std::string& name, const char* kind) {
  if (axes->empty()) axes->assign(count, -1);
  bool valid = axes->size() == count;
  for (int axis : *axes) valid = valid && (axis == -1 || axis == 0);
  if (valid) return tensorflow::OkStatus();
  return errors::InvalidArgument("NeuronOp ", name, ": ", kind, "_batch_axis does not match its ",
                                 count, " ", kind, "s (each must be -1 or 0): recompile the model");
}

// Copies `rows` rows of `src` starting at `from` into `dst` starting at `to`.
Status CopyRows(const Tensor& src, int64_t from, int64_t rows, Tensor* dst, int64_t to) {
  if (rows <= 0) return tensorflow::OkStatus();
  const int64_t per_row = src.dim_size(0) ? src.NumElements() / src.dim_size(0) : 0;
  if (tensorflow::DataTypeCanUseMemcpy(src.dtype())) {
    const int64_t row_bytes = per_row * tensorflow::DataTypeSize(src.dtype());
    const char* source = src.tensor_data().data();
    char* target = const_cast<char*>(dst->tensor_data().data());
    std::memcpy(target + to * row_bytes, source + from * row_bytes, rows * row_bytes);
    return tensorflow::OkStatus();
  }
  if (src.dtype() == tensorflow::DT_STRING) {
    auto source = src.flat<tensorflow::tstring>();
    auto target = dst->flat<tensorflow::tstring>();
    for (int64_t i = 0; i < rows * per_row; ++i) target(to * per_row + i) = source(from * per_row + i);
    return tensorflow::OkStatus();
  }
  return errors::Unimplemented("dynamic batch of ", tensorflow::DataTypeString(src.dtype()),
                               " tensors is not supported");
}

// Zero bytes for numbers, empty strings for strings (allocate_* leaves numbers uninitialized).
void Zero(Tensor* tensor) {
  if (tensorflow::DataTypeCanUseMemcpy(tensor->dtype())) {
    std::memset(const_cast<char*>(tensor->tensor_data().data()), 0, tensor->TotalBytes());
  }
}

}  // namespace

Status OpSpec::Validate() {
  const size_t inputs = input_dtypes.size(), outputs = output_dtypes.size();
  if (input_shapes.size() != inputs || output_shapes.size() != outputs) {
    return errors::InvalidArgument("NeuronOp ", name, " is inconsistent (", inputs, " input dtypes, ",
                                   input_shapes.size(), " input shapes, ", outputs,
                                   " output dtypes, ", output_shapes.size(),
                                   " output shapes): recompile the model");
  }
  TF_RETURN_IF_ERROR(Axes(&input_batch_axis, inputs, name, "input"));
  TF_RETURN_IF_ERROR(Axes(&output_batch_axis, outputs, name, "output"));
  for (size_t i = 0; i < inputs; ++i) {
    if (!input_shapes[i].IsFullyDefined()) {
      return errors::InvalidArgument("NeuronOp ", name, ": input ", i, " has no fixed compiled shape ",
                                     Format(Dims(input_shapes[i])),
                                     ": recompile the model with a known batch size");
    }
  }
  return tensorflow::OkStatus();
}

Status CheckShapes(const OpSpec& spec, const std::vector<Tensor>& inputs, BatchPlan* plan) {
  size_t first = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    std::vector<int64_t> got = Dims(inputs[i]), want = Dims(spec.input_shapes[i]);
    if (spec.input_batch_axis[i] != 0) {
      if (got != want) {
        return errors::InvalidArgument(
            Where(spec, i), " has shape ", Format(got), " but the program was compiled for exactly ",
            Format(want), ": pass that shape, or recompile with "
            "NEURON_CC_FLAGS=--dynamic-batch-size to accept other batch sizes");
      }
      continue;
    }
    if (got.size() != want.size() || !std::equal(got.begin() + std::min<size_t>(1, got.size()),
                                                 got.end(), want.begin() + std::min<size_t>(1, want.size()))) {
      std::vector<int64_t> expected = want;
      if (!expected.empty()) expected[0] = -1;
      return errors::InvalidArgument(Where(spec, i), " has shape ", Format(got),
                                     " but the program expects ", Format(expected),
                                     " (any batch): reshape the input");
    }
    if (plan->batch < 0) {
      plan->batch = got[0];
      plan->compiled = want[0];
      first = i;
    } else if (got[0] != plan->batch) {
      return errors::InvalidArgument("inputs disagree on the batch size: ", Where(spec, first), " has ",
                                     plan->batch, " rows but ", Where(spec, i), " has ", got[0],
                                     ": pass the same number of rows to every input");
    }
  }
  if (plan->batch >= 0 && plan->compiled > 0) {
    plan->shards = std::max<int64_t>(1, (plan->batch + plan->compiled - 1) / plan->compiled);
  }
  return tensorflow::OkStatus();
}

Status ShardInputs(tensorflow::OpKernelContext* ctx, const OpSpec& spec,
                   const std::vector<Tensor>& inputs, const BatchPlan& plan, int64_t shard,
                   std::vector<Tensor>* out) {
  const int64_t k = plan.compiled, start = shard * k;
  const int64_t rows = std::min(k, plan.batch - start);
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (spec.input_batch_axis[i] != 0) {
      out->push_back(inputs[i]);  // fixed-shape inputs go whole to every shard
      continue;
    }
    if (rows == k) {  // a full shard is a view of the input when it stays aligned
      Tensor view = inputs[i].Slice(start, start + k);
      if (view.IsAligned()) {
        out->push_back(view);
        continue;
      }
    }
    TensorShape shape = inputs[i].shape();
    shape.set_dim(0, k);
    Tensor padded;
    TF_RETURN_IF_ERROR(ctx->allocate_temp(inputs[i].dtype(), shape, &padded));
    if (rows < k) Zero(&padded);
    TF_RETURN_IF_ERROR(CopyRows(inputs[i], start, rows, &padded, 0));
    out->push_back(padded);
  }
  return tensorflow::OkStatus();
}

Status MergeOutputs(tensorflow::OpKernelContext* ctx, const OpSpec& spec, const BatchPlan& plan,
                    const std::vector<std::vector<Tensor>>& results) {
  const int64_t k = plan.compiled;
  for (size_t i = 0; i < spec.output_dtypes.size(); ++i) {
    const Tensor& head = results[0][i];
    if (spec.output_batch_axis[i] != 0) {
      ctx->set_output(i, head);
      continue;
    }
    for (const auto& shard : results) {
      if (shard[i].dims() == 0 || shard[i].dim_size(0) != k) {
        return errors::Internal("NeuronOp ", spec.name, " output ", i, " has shape ",
                                Format(Dims(shard[i])), " but a batch-axis output needs ", k,
                                " rows: recompile the model");
      }
    }
    TensorShape shape = head.shape();
    shape.set_dim(0, plan.batch);
    Tensor* merged = nullptr;
    TF_RETURN_IF_ERROR(ctx->allocate_output(i, shape, &merged));
    for (size_t s = 0; s < results.size(); ++s) {
      const int64_t start = static_cast<int64_t>(s) * k;
      TF_RETURN_IF_ERROR(CopyRows(results[s][i], 0, std::min(k, plan.batch - start), merged, start));
    }
  }
  return tensorflow::OkStatus();
}

Status EmptyOutputs(tensorflow::OpKernelContext* ctx, const OpSpec& spec) {
  for (size_t i = 0; i < spec.output_dtypes.size(); ++i) {
    TensorShape shape;
    std::vector<int64_t> dims = Dims(spec.output_shapes[i]);
    for (size_t d = 0; d < dims.size(); ++d) {
      int64_t size = dims[d] < 0 ? 0 : dims[d];
      TF_RETURN_IF_ERROR(shape.AddDimWithStatus(d == 0 && spec.output_batch_axis[i] == 0 ? 0 : size));
    }
    Tensor* out = nullptr;
    TF_RETURN_IF_ERROR(ctx->allocate_output(i, shape, &out));
    Zero(out);
  }
  return tensorflow::OkStatus();
}

}  // namespace neuroncli
