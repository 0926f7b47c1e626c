// The CPU kernel of NeuronOp: runs the op's program (the payload of its `executable`
// attribute, an optimized GraphDef) in a TensorFlow C API session of its own, created once
// per kernel instance and reused by every call.  It models what neuroncli's runtime models of
// one program: the fixed compiled shapes, dynamic-batch sharding with zero padding
// (neuroncli/runtime/batching.py), and the checksum.  It ignores placement (cores, replicas,
// device memory): those only exist in the simulator.  The `graph_def` attribute is never read.
#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "executable.h"
#include "shard.h"
#include "tensorflow/c/c_api.h"
#include "tensorflow/c/tf_tensor_internal.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/protobuf/config.pb.h"
#include "tensorflow/core/protobuf/rewriter_config.pb.h"

namespace tensorflow {
namespace {

// The session config neuroncli's runtime uses (runtime/host.py): the payload was optimized
// at compile time, so Grappler's graph-shaping passes would only repeat that work.
std::string SessionConfig() {
  ConfigProto config;
  config.set_allow_soft_placement(true);
  RewriterConfig* rewrite = config.mutable_graph_options()->mutable_rewrite_options();
  rewrite->set_constant_folding(RewriterConfig::OFF);
  rewrite->set_arithmetic_optimization(RewriterConfig::OFF);
  rewrite->set_layout_optimizer(RewriterConfig::OFF);
  rewrite->set_dependency_optimization(RewriterConfig::OFF);
  rewrite->set_loop_optimization(RewriterConfig::OFF);
  rewrite->set_shape_optimization(RewriterConfig::OFF);
  rewrite->set_function_optimization(RewriterConfig::OFF);
  rewrite->set_debug_stripper(RewriterConfig::OFF);
  rewrite->set_pin_to_host_optimization(RewriterConfig::OFF);
  rewrite->set_implementation_selector(RewriterConfig::OFF);
  rewrite->set_common_subgraph_elimination(RewriterConfig::OFF);
  rewrite->set_memory_optimization(RewriterConfig::NO_MEM_OPT);
  return config.SerializeAsString();
}

// Each call runs the program in the calling thread: the calling kernel already holds an
// inter-op thread, and waiting on a second pool shared with the outer session could
// deadlock when every thread of it waits on a NeuronOp.  Intra-op parallelism is unchanged.
std::string InlineRunOptions() {
  RunOptions options;
  options.set_inter_op_thread_pool(-1);
  return options.SerializeAsString();
}

struct TfStatus {
  TF_Status* status = TF_NewStatus();
  ~TfStatus() { TF_DeleteStatus(status); }
  bool ok() const { return TF_GetCode(status) == TF_OK; }
  std::string message() const { return TF_Message(status); }
  absl::StatusCode code() const { return static_cast<absl::StatusCode>(TF_GetCode(status)); }
};

class NeuronOpKernel : public OpKernel {
 public:
  explicit NeuronOpKernel(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ReadSpec(ctx));
    OP_REQUIRES_OK(ctx, OpenSession(ctx->def().attr().at("executable").s()));
  }

  ~NeuronOpKernel() override {
    TfStatus status;
    if (session_ != nullptr) {
      TF_CloseSession(session_, status.status);
      TF_DeleteSession(session_, status.status);
    }
    if (graph_ != nullptr) TF_DeleteGraph(graph_);
  }

  void Compute(OpKernelContext* ctx) override {
    std::vector<Tensor> inputs;
    for (int i = 0; i < ctx->num_inputs(); ++i) inputs.push_back(ctx->input(i));
    neuroncli::BatchPlan plan;
    OP_REQUIRES_OK(ctx, neuroncli::CheckShapes(spec_, inputs, &plan));
    if (plan.batch == 0) {
      OP_REQUIRES_OK(ctx, neuroncli::EmptyOutputs(ctx, spec_));
      return;
    }
    if (!plan.sharded()) {
      std::vector<Tensor> outputs;
      OP_REQUIRES_OK(ctx, Run(inputs, &outputs));
      for (size_t i = 0; i < outputs.size(); ++i) ctx->set_output(i, outputs[i]);
      return;
    }
    std::vector<std::vector<Tensor>> results(plan.shards);
    for (int64_t shard = 0; shard < plan.shards; ++shard) {
      std::vector<Tensor> shard_inputs;
      OP_REQUIRES_OK(ctx, neuroncli::ShardInputs(ctx, spec_, inputs, plan, shard, &shard_inputs));
      OP_REQUIRES_OK(ctx, Run(shard_inputs, &results[shard]));
    }
    OP_REQUIRES_OK(ctx, neuroncli::MergeOutputs(ctx, spec_, plan, results));
  }

 private:
  Status ReadSpec(OpKernelConstruction* ctx) {
    spec_.name = name();
    DataTypeVector in_types, out_types;
    TF_RETURN_IF_ERROR(ctx->GetAttr("input_dtypes", &in_types));
    TF_RETURN_IF_ERROR(ctx->GetAttr("output_dtypes", &out_types));
    spec_.input_dtypes.assign(in_types.begin(), in_types.end());
    spec_.output_dtypes.assign(out_types.begin(), out_types.end());
    TF_RETURN_IF_ERROR(ctx->GetAttr("input_shapes", &spec_.input_shapes));
    TF_RETURN_IF_ERROR(ctx->GetAttr("output_shapes", &spec_.output_shapes));
    TF_RETURN_IF_ERROR(ctx->GetAttr("input_batch_axis", &spec_.input_batch_axis));
    TF_RETURN_IF_ERROR(ctx->GetAttr("output_batch_axis", &spec_.output_batch_axis));
    return spec_.Validate();
  }

  Status Invalid(const std::string& message) const {
    return errors::InvalidArgument("NeuronOp ", name(), ": ", message);
  }

  Status OpenSession(const std::string& data) {
    neuroncli::Executable exe;
    std::string error;
    if (!neuroncli::ReadExecutable(data, &exe, &error)) return Invalid(error);
    if (exe.input_names.size() != spec_.input_dtypes.size() ||
        exe.output_names.size() != spec_.output_dtypes.size()) {
      return Invalid("its executable has " + std::to_string(exe.input_names.size()) +
                     " inputs and " + std::to_string(exe.output_names.size()) +
                     " outputs but the op declares " + std::to_string(spec_.input_dtypes.size()) +
                     " and " + std::to_string(spec_.output_dtypes.size()) + ": recompile the model");
    }
    graph_ = TF_NewGraph();
    TfStatus status;
    TF_Buffer payload{data.data() + exe.payload_offset, data.size() - exe.payload_offset, nullptr};
    TF_ImportGraphDefOptions* import = TF_NewImportGraphDefOptions();
    TF_GraphImportGraphDef(graph_, &payload, import, status.status);
    TF_DeleteImportGraphDefOptions(import);
    if (!status.ok()) return Invalid("its program does not import (" + status.message() +
                                     "): recompile the model");
    TF_RETURN_IF_ERROR(Resolve(exe.input_names, spec_.input_dtypes, "input", &feeds_));
    TF_RETURN_IF_ERROR(Resolve(exe.output_names, spec_.output_dtypes, "output", &fetches_));
    const std::string config = SessionConfig();
    run_options_ = InlineRunOptions();
    TF_SessionOptions* options = TF_NewSessionOptions();
    TF_SetConfig(options, config.data(), config.size(), status.status);
    if (status.ok()) session_ = TF_NewSession(graph_, options, status.status);
    TF_DeleteSessionOptions(options);
    if (!status.ok()) return Status(status.code(), "NeuronOp " + name() + ": " + status.message());
    return OkStatus();
  }

  // Tensor names inside the payload -> TF_Outputs, checking each dtype against the op's.
  Status Resolve(const std::vector<std::string>& names, const std::vector<DataType>& dtypes,
                 const char* kind, std::vector<TF_Output>* out) {
    for (size_t i = 0; i < names.size(); ++i) {
      const std::string& tensor = names[i];
      size_t colon = tensor.rfind(':');
      std::string op = colon == std::string::npos ? tensor : tensor.substr(0, colon);
      int port = colon == std::string::npos ? 0 : std::atoi(tensor.c_str() + colon + 1);
      TF_Operation* operation = TF_GraphOperationByName(graph_, op.c_str());
      if (operation == nullptr || port < 0 || port >= TF_OperationNumOutputs(operation)) {
        return Invalid(std::string("its program has no ") + kind + " tensor '" + tensor +
                       "': recompile the model");
      }
      TF_Output output{operation, port};
      DataType actual = static_cast<DataType>(TF_OperationOutputType(output));
      if (actual != dtypes[i]) {
        return Invalid(std::string(kind) + " " + std::to_string(i) + " is declared " +
                       DataTypeString(dtypes[i]) + " but its program's tensor '" + tensor +
                       "' is " + DataTypeString(actual) + ": recompile the model");
      }
      out->push_back(output);
    }
    return OkStatus();
  }

  Status Run(const std::vector<Tensor>& inputs, std::vector<Tensor>* outputs) const {
    std::vector<TF_Tensor*> values;
    Status status;
    for (const Tensor& tensor : inputs) {
      values.push_back(TF_TensorFromTensor(tensor, &status));
      if (!status.ok()) break;
    }
    std::vector<TF_Tensor*> results(fetches_.size(), nullptr);
    TfStatus run;
    if (status.ok()) {
      TF_Buffer options{run_options_.data(), run_options_.size(), nullptr};
      TF_SessionRun(session_, &options, feeds_.data(), values.data(), values.size(),
                    fetches_.data(), results.data(), results.size(), nullptr, 0, nullptr,
                    run.status);
    }
    for (TF_Tensor* value : values) TF_DeleteTensor(value);
    if (status.ok() && !run.ok()) {
      status = Status(run.code(), "NeuronOp " + name() + " failed: " + run.message());
    }
    for (TF_Tensor* result : results) {
      if (result == nullptr) continue;
      if (status.ok()) {
        outputs->emplace_back();
        status = TF_TensorToTensor(result, &outputs->back());
      }
      TF_DeleteTensor(result);
    }
    return status;
  }

  neuroncli::OpSpec spec_;
  TF_Graph* graph_ = nullptr;
  TF_Session* session_ = nullptr;
  std::vector<TF_Output> feeds_;
  std::vector<TF_Output> fetches_;
  std::string run_options_;
};

REGISTER_KERNEL_BUILDER(Name("NeuronOp").Device(DEVICE_CPU), NeuronOpKernel);

}  // namespace
}  // namespace tensorflow
