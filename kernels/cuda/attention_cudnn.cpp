/* attention_cudnn.cpp: cuDNN's fused attention through cudnn-frontend (attention_cudnn.h). Host
 * code only: it describes SDPA graphs, plans them once per shape and queues them. */
#include "attention_cudnn.h"

#ifndef LORAFT_CUDNN_ATTENTION

const char *cudnn_sdpa_unavailable(void) {
    return "model.attention cudnn: this build has no cuDNN attention (cudnn-frontend's headers "
           "or cuDNN 9 were not found when it was configured; scripts/setup.sh fetches the "
           "headers)";
}
const char *cudnn_sdpa_forward(const CudnnSdpa *, void *, float *, const void *, const void *,
                               const void *, const CudnnSdpaInputs *) {
    return cudnn_sdpa_unavailable();
}
const char *cudnn_sdpa_backward(const CudnnSdpa *, void *, void *, void *, const void *,
                                const void *, const void *, const void *, const void *,
                                const float *, const CudnnSdpaInputs *) {
    return cudnn_sdpa_unavailable();
}
const char *cudnn_sdpa_check(const CudnnSdpa *, int, int) {
    return cudnn_sdpa_unavailable();
}

#else

#include <cuda_runtime.h>
#include <cudnn_frontend.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace fe = cudnn_frontend;
using Graph = fe::graph::Graph;
using Tensor = std::shared_ptr<fe::graph::Tensor_attributes>;

namespace {

/* The tensors' uids: the variant pack names device pointers by them. */
enum Uid : int64_t { Q = 1, K, V, O, STATS, DOUT, DQ, DK, DV, SEQ_Q, SEQ_KV, SEED, OFFSET, UIDS };

struct Plan {
    CudnnSdpa shape;
    bool backward;
    std::shared_ptr<Graph> graph;
};

char message[768];
cudnnHandle_t handle;
/* the shapes seen, least recently used first; past PLANS that one is dropped (planned again if
 * it returns) */
std::vector<Plan> plans;
constexpr size_t PLANS = 64;
void *workspace;
int64_t workspace_bytes;
/* The variant pack, kept from call to call, so that filling it allocates nothing in a step. */
std::unordered_map<int64_t, void *> pack;

const char *fail(const char *what, const std::string &why) {
    snprintf(message, sizeof message, "model.attention cudnn: %s: %s", what, why.c_str());
    return message;
}
/* A shape cuDNN's rules refuse (Ampere's backward past head size 128, say), and the way out. */
const char *refused(const char *what, fe::error_t &e) {
    return fail(what, e.get_message() + " (model.attention loraft takes this shape)");
}

/* What this module refuses before cuDNN sees the graph (NULL: nothing): soft-capped scores,
 * which its SDPA graphs here do not describe. */
const char *unsupported(const CudnnSdpa &s, const char *what) {
    if (s.softcap <= 0.0f) return NULL;
    return fail(what, "soft-capped attention scores (Gemma 2's attn_logit_softcapping) are not "
                      "among its SDPA graphs (model.attention loraft takes soft-capped attention)");
}

bool same(const CudnnSdpa &a, const CudnnSdpa &b) {
    return a.B == b.B && a.T == b.T && a.NH == b.NH && a.NKV == b.NKV && a.HS == b.HS &&
           a.ld == b.ld && a.causal == b.causal && a.padded == b.padded && a.p == b.p &&
           a.window == b.window && a.scale == b.scale && a.softcap == b.softcap;
}

Tensor input(Graph &g, Uid uid, const char *name, std::vector<int64_t> dim,
             std::vector<int64_t> stride) {
    return g.tensor(
        fe::graph::Tensor_attributes().set_name(name).set_uid(uid).set_dim(dim).set_stride(stride));
}
/* [B, H, T, HS] of a heads-major copy (rows of ld). */
Tensor heads(Graph &g, Uid uid, const char *name, const CudnnSdpa &s, int64_t H) {
    int64_t T = s.T, ld = s.ld;
    return input(g, uid, name, {s.B, H, T, s.HS}, {H * T * ld, T * ld, ld, 1});
}
/* t as [B, H, T, HS] of a token-major [B, T, H*HS] tensor, an output. */
void tokens(const Tensor &t, Uid uid, const CudnnSdpa &s, int64_t H) {
    int64_t T = s.T, HS = s.HS;
    t->set_output(true)
        .set_uid(uid)
        .set_dim({s.B, H, T, HS})
        .set_stride({T * H * HS, HS, H * HS, 1});
}
Tensor scalar(Graph &g, Uid uid, const char *name, int64_t n, fe::DataType_t type) {
    return g.tensor(fe::graph::Tensor_attributes()
                        .set_name(name)
                        .set_uid(uid)
                        .set_dim({n, 1, 1, 1})
                        .set_stride({1, 1, 1, 1})
                        .set_data_type(type));
}

/* The masks and dropout, the same for forward's attributes and backward's. The window: with the
 * causal mask's top-left diagonal, cuDNN keeps key j for query i where j + window > i, the
 * ops' band. */
template <typename A> void masks(A &a, Graph &g, const CudnnSdpa &s) {
    a.set_attn_scale(s.scale).set_causal_mask(s.causal != 0);
    if (s.window) a.set_diagonal_band_left_bound(s.window);
    if (s.padded)
        a.set_padding_mask(true)
            .set_seq_len_q(scalar(g, SEQ_Q, "seq_len_q", s.B, fe::DataType_t::INT32))
            .set_seq_len_kv(scalar(g, SEQ_KV, "seq_len_kv", s.B, fe::DataType_t::INT32));
    if (s.p > 0)
        a.set_dropout(s.p, scalar(g, SEED, "seed", 1, fe::DataType_t::INT64),
                      scalar(g, OFFSET, "offset", 1, fe::DataType_t::INT64));
}

/* Forward: o and stats from q, k, v. Backward: dq, dk, dv from q, k, v, o, dout and stats. For a
 * GPU of compute capability sm, or (0) the one that runs it. */
std::shared_ptr<Graph> describe(const CudnnSdpa &s, bool backward, int sm) {
    auto g = std::make_shared<Graph>();
    if (sm) g->set_sm_version(sm); /* before the nodes, which copy the graph's context */
    g->set_io_data_type(fe::DataType_t::BFLOAT16)
        .set_intermediate_data_type(fe::DataType_t::FLOAT)
        .set_compute_data_type(fe::DataType_t::FLOAT);
    Tensor q = heads(*g, Q, "q", s, s.NH), k = heads(*g, K, "k", s, s.NKV),
           v = heads(*g, V, "v", s, s.NKV);
    int64_t NH = s.NH, T = s.T, HS = s.HS;
    if (!backward) {
        auto a = fe::graph::SDPA_attributes().set_name("sdpa").set_generate_stats(true);
        masks(a, *g, s);
        auto [o, stats] = g->sdpa(q, k, v, a);
        tokens(o, O, s, s.NH);
        stats->set_output(true).set_uid(STATS).set_data_type(fe::DataType_t::FLOAT);
        stats->set_dim({s.B, NH, T, 1}).set_stride({NH * T, T, 1, 1});
        return g;
    }
    Tensor o = input(*g, O, "o", {s.B, NH, T, HS}, {T * NH * HS, HS, NH * HS, 1});
    Tensor dout = heads(*g, DOUT, "dout", s, s.NH);
    Tensor stats = input(*g, STATS, "stats", {s.B, NH, T, 1}, {NH * T, T, 1, 1});
    stats->set_data_type(fe::DataType_t::FLOAT);
    auto a = fe::graph::SDPA_backward_attributes().set_name("sdpa_backward");
    masks(a, *g, s);
    auto [dq, dk, dv] = g->sdpa_backward(q, k, v, o, dout, stats, a);
    tokens(dq, DQ, s, s.NH), tokens(dk, DK, s, s.NKV), tokens(dv, DV, s, s.NKV);
    return g;
}

const char *start(void) {
    if (handle) return NULL;
    cudnnStatus_t st = cudnnCreate(&handle);
    if (st == CUDNN_STATUS_SUCCESS) st = cudnnSetStream(handle, cudaStreamPerThread);
    if (st == CUDNN_STATUS_SUCCESS) return NULL;
    if (handle) cudnnDestroy(handle);
    handle = NULL;
    return fail("cudnnCreate", cudnnGetErrorString(st));
}

/* The workspace at least `bytes`: grown between steps, never inside a capture. */
const char *reserve(int64_t bytes) {
    if (bytes <= workspace_bytes) return NULL;
    cuda_graph_drop();
    cudaFree(workspace);
    workspace = NULL, workspace_bytes = 0;
    cudaError_t e = cudaMalloc(&workspace, (size_t)bytes);
    if (e != cudaSuccess) return fail("its workspace", cudaGetErrorString(e));
    workspace_bytes = bytes;
    return NULL;
}

/* The planned graph of this shape, planning it on first use (NULL, with message, on failure). */
Graph *plan_for(const CudnnSdpa &s, bool backward) {
    for (size_t i = 0; i < plans.size(); i++)
        if (plans[i].backward == backward && same(plans[i].shape, s)) {
            std::rotate(plans.begin() + i, plans.begin() + i + 1, plans.end()); /* the latest */
            return plans.back().graph.get();
        }
    cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    cudaStreamIsCapturing(cudaStreamPerThread, &capture);
    if (capture != cudaStreamCaptureStatusNone) {
        fail("a shape to plan inside a CUDA graph capture",
             "cuDNN plans outside one; the trainer runs a shape's first micro-batch op by op, but "
             "this shape's plan was dropped when 64 others came after it (fewer lengths: "
             "data.pad_to_multiple_of; or train.cuda_graphs off)");
        return NULL;
    }
    if (start() || unsupported(s, backward ? "backward" : "forward")) return NULL;
    std::shared_ptr<Graph> g = describe(s, backward, 0);
    fe::error_t e = g->validate();
    if (e.is_good()) e = g->build_operation_graph(handle);
    if (e.is_good()) e = g->create_execution_plans({fe::HeurMode_t::A});
    if (e.is_good()) e = g->check_support(handle);
    if (e.is_good()) e = g->build_plans(handle);
    int64_t bytes = 0;
    if (e.is_good()) e = g->get_workspace_size(bytes);
    if (!e.is_good()) {
        refused(backward ? "planning backward" : "planning forward", e);
        return NULL;
    }
    if (reserve(bytes)) return NULL;
    if (plans.size() == PLANS) cuda_graph_drop(), plans.erase(plans.begin());
    plans.push_back({s, backward, g});
    return g.get();
}

/* Plans (first use) and queues the graph on the pointers ptr[uid] (NULL where this call has
 * none); cudnn-frontend's exceptions end here, as messages, not in the C callers' frames. */
const char *run(const CudnnSdpa *s, bool backward, void *const ptr[UIDS],
                const CudnnSdpaInputs *in) {
    const char *what = backward ? "backward" : "forward";
    try {
        Graph *g = plan_for(*s, backward);
        if (!g) return message;
        for (int64_t uid = Q; uid < SEQ_Q; uid++) pack[uid] = ptr[uid];
        pack[SEQ_Q] = (void *)in->seq_q, pack[SEQ_KV] = (void *)in->seq_kv;
        pack[SEED] = (void *)in->seed, pack[OFFSET] = (void *)in->offset;
        fe::error_t e = g->execute(handle, pack, workspace);
        return e.is_good() ? NULL : fail(what, e.get_message());
    } catch (const std::exception &x) {
        return fail(what, x.what());
    }
}

} // namespace

const char *cudnn_sdpa_unavailable(void) {
    return NULL;
}

const char *cudnn_sdpa_forward(const CudnnSdpa *s, void *o, float *stats, const void *q,
                               const void *k, const void *v, const CudnnSdpaInputs *in) {
    void *ptr[UIDS] = {};
    ptr[Q] = (void *)q, ptr[K] = (void *)k, ptr[V] = (void *)v, ptr[O] = o, ptr[STATS] = stats;
    return run(s, false, ptr, in);
}

const char *cudnn_sdpa_backward(const CudnnSdpa *s, void *dq, void *dk, void *dv, const void *q,
                                const void *k, const void *v, const void *o, const void *dout,
                                const float *stats, const CudnnSdpaInputs *in) {
    void *ptr[UIDS] = {};
    ptr[Q] = (void *)q, ptr[K] = (void *)k, ptr[V] = (void *)v, ptr[O] = (void *)o;
    ptr[DOUT] = (void *)dout, ptr[STATS] = (void *)stats, ptr[DQ] = dq, ptr[DK] = dk, ptr[DV] = dv;
    return run(s, true, ptr, in);
}

const char *cudnn_sdpa_check(const CudnnSdpa *s, int backward, int sm) {
    const char *what = backward ? "backward" : "forward";
    if (unsupported(*s, what)) return message;
    try {
        fe::error_t e = describe(*s, backward != 0, sm)->validate();
        return e.is_good() ? NULL : refused(what, e);
    } catch (const std::exception &x) {
        return fail(what, x.what());
    }
}

#endif
