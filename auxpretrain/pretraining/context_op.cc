// The context objective's passes as a TensorFlow op, on the tables' own memory.
//
// AuxpretrainContextPasses locks the embedding and the output table (resource variables, in
// the order TensorFlow's optimizers lock theirs), takes their buffers for a sparse update (as
// a scatter does: a buffer another tensor still holds is copied first), and runs
// ccontext.c's `context_passes_in_place` on them: the same updates as the compiled kernel on a
// gathered block, with no gather, no scatter and no Python in the step.
//
// Built at first use by auxpretrain/pretraining/context_op.py, against the installed
// TensorFlow's headers, with ccontext.c compiled as its core (-DCONTEXT_CORE_ONLY).
#define EIGEN_USE_THREADS

#include <cstdint>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/kernels/training_op_helpers.h"

extern "C" int context_passes_in_place(float *in_table, ptrdiff_t in_count, float *out_table, ptrdiff_t out_count,
                                       ptrdiff_t dim, const int32_t *ids, const int32_t *reach,
                                       const int32_t *noise, ptrdiff_t passes, ptrdiff_t S, ptrdiff_t T, ptrdiff_t P,
                                       float scale, int negatives, int threads, double *loss, double *pairs);

namespace {

using tensorflow::DT_FLOAT;
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using CPUDevice = Eigen::ThreadPoolDevice;

REGISTER_OP("AuxpretrainContextPasses")
    .Input("embedding: resource")
    .Input("output: resource")
    .Input("ids: int32")    // [passes, sentences, T]: kept words, left-aligned, 0 at padding
    .Input("reach: int32")  // [passes, sentences, T]: each word's window reach, 0 at padding
    .Input("noise: int32")  // [passes, sentences, P]: each sentence's noise pool
    .Input("scale: float")  // -learning rate x the objective's weight
    .Attr("negatives: int >= 0")
    .Attr("threads: int >= 1")
    .Output("loss: float")   // the summed pair losses, as each update saw them
    .Output("pairs: float")  // the number of pairs
    .SetIsStateful()
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext *c) {
        c->set_output(0, c->Scalar());
        c->set_output(1, c->Scalar());
        return absl::OkStatus();
    })
    .Doc("The context objective's SGD passes of a step, in place on the two tables.");

class ContextPassesOp : public OpKernel {
  public:
    explicit ContextPassesOp(OpKernelConstruction *context) : OpKernel(context) {
        OP_REQUIRES_OK(context, context->GetAttr("negatives", &negatives_));
        OP_REQUIRES_OK(context, context->GetAttr("threads", &threads_));
    }

    void Compute(OpKernelContext *context) override {
        const Tensor &ids = context->input(2), &reach = context->input(3), &noise = context->input(4);
        const Tensor &scale = context->input(5);
        OP_REQUIRES(context, ids.dims() == 3 && reach.shape() == ids.shape(),
                    absl::InvalidArgumentError("ids and reach must be [passes, sentences, T] alike"));
        OP_REQUIRES(context, noise.dims() == 3 && noise.dim_size(0) == ids.dim_size(0) &&
                                 noise.dim_size(1) == ids.dim_size(1),
                    absl::InvalidArgumentError("noise must be [passes, sentences, P]"));
        OP_REQUIRES(context, scale.NumElements() == 1, absl::InvalidArgumentError("scale must be a scalar"));
        auto locks = tensorflow::MaybeLockVariableInputMutexesInOrder<CPUDevice, float>(context, true, true, {0, 1});
        Tensor embedding, output;
        OP_REQUIRES_OK(context, tensorflow::GetInputTensorFromVariable<CPUDevice, float>(context, 0, true, true,
                                                                                           &embedding));
        OP_REQUIRES_OK(context, tensorflow::GetInputTensorFromVariable<CPUDevice, float>(context, 1, true, true,
                                                                                           &output));
        OP_REQUIRES(context, embedding.dtype() == DT_FLOAT && output.dtype() == DT_FLOAT && embedding.dims() == 2 &&
                                 output.dims() == 2 && embedding.dim_size(1) == output.dim_size(1) &&
                                 embedding.dim_size(1) > 0,
                    absl::InvalidArgumentError("the tables must be float32 [rows, dim] of the same dim"));
        OP_REQUIRES(context, embedding.data() != output.data(),
                    absl::InvalidArgumentError("the embedding and the output table must be two variables"));
        const int64_t passes = ids.dim_size(0), S = passes * ids.dim_size(1);
        double loss = 0, pairs = 0;
        int status = 0;
        if (S > 0)
            status = context_passes_in_place(
                embedding.flat<float>().data(), embedding.dim_size(0), output.flat<float>().data(),
                output.dim_size(0), embedding.dim_size(1), ids.flat<int32_t>().data(), reach.flat<int32_t>().data(),
                noise.flat<int32_t>().data(), passes, S, ids.dim_size(2), noise.dim_size(2),
                scale.flat<float>()(0), negatives_, threads_, &loss, &pairs);
        OP_REQUIRES(context, status != -2, absl::InvalidArgumentError("a word or noise id outside its table"));
        OP_REQUIRES(context, status == 0, absl::ResourceExhaustedError("no memory for the context passes"));
        Tensor *out = nullptr;
        OP_REQUIRES_OK(context, context->allocate_output(0, TensorShape({}), &out));
        out->scalar<float>()() = static_cast<float>(loss);
        OP_REQUIRES_OK(context, context->allocate_output(1, TensorShape({}), &out));
        out->scalar<float>()() = static_cast<float>(pairs);
    }

  private:
    int negatives_, threads_;
};

REGISTER_KERNEL_BUILDER(Name("AuxpretrainContextPasses").Device(tensorflow::DEVICE_CPU), ContextPassesOp);

}  // namespace
