// The NeuronOp op definition, as AWS's tensorflow-neuron registers it: the same attributes,
// types and defaults (so AWS's and neuroncli's SavedModels validate alike), stateful (a
// program on a device: never constant-folded or deduplicated), and a shape function that
// gives dynamic-batch outputs an unknown batch dimension.
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace tensorflow {
namespace {

// Outputs take their compiled shapes.  When the op batches dynamically (any input batch axis
// other than -1), each output's batch axis becomes unknown.  AWS reads that axis from
// input_batch_axis[output index]; we read output_batch_axis (what the compiler records per
// output) and fall back to AWS's rule when it is absent.  Inconsistent attributes are left
// to the kernel, which reports them; shape inference must not fail a whole graph import.
Status NeuronOpShape(shape_inference::InferenceContext* ctx) {
  std::vector<int> input_axes, output_axes;
  TF_RETURN_IF_ERROR(ctx->GetAttr("input_batch_axis", &input_axes));
  TF_RETURN_IF_ERROR(ctx->GetAttr("output_batch_axis", &output_axes));
  bool dynamic = false;
  for (int axis : input_axes) dynamic = dynamic || axis != -1;
  std::vector<PartialTensorShape> shapes;
  TF_RETURN_IF_ERROR(ctx->GetAttr("output_shapes", &shapes));
  if (static_cast<int>(shapes.size()) != ctx->num_outputs()) return OkStatus();
  for (int index = 0; index < ctx->num_outputs(); ++index) {
    TensorShapeProto proto;
    shapes[index].AsProto(&proto);
    const std::vector<int>& axes = output_axes.empty() ? input_axes : output_axes;
    if (dynamic && index < static_cast<int>(axes.size())) {
      int axis = axes[index];
      if (axis >= 0 && axis < proto.dim_size()) {
        proto.mutable_dim(axis)->set_size(shape_inference::InferenceContext::kUnknownDim);
      }
    }
    shape_inference::ShapeHandle handle;
    TF_RETURN_IF_ERROR(ctx->MakeShapeFromPartialTensorShape(PartialTensorShape(proto), &handle));
    ctx->set_output(index, handle);
  }
  return OkStatus();
}

}  // namespace

REGISTER_OP("NeuronOp")
    .SetIsStateful()
    .Attr("graph_def: string")
    .Attr("input_names: list(string)")
    .Attr("input_dtypes: list(type) >= 0")
    .Attr("input_shapes: list(shape)")
    .Attr("output_names: list(string)")
    .Attr("output_dtypes: list(type) >= 0")
    .Attr("output_shapes: list(shape)")
    .Attr("executable: string = ''")
    .Attr("input_batch_axis: list(int) = []")
    .Attr("output_batch_axis: list(int) = []")
    .Attr("model_config: list(int) = []")
    .Input("input_tensors: input_dtypes")
    .Output("output_tensors: output_dtypes")
    .SetShapeFn(NeuronOpShape);

}  // namespace tensorflow
