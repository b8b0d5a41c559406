// runtime/probe: what one call costs apart from the link and the work. The planner's latency
// model adds it to every choice that talks to the server (src/plan/planner.h).
//
// A gRPC server with the Open Inference Protocol's ServerLive answers on loopback; the client
// times empty unary calls. What that measures is gRPC's own work on both sides (serialising,
// HTTP/2 framing, the kernel's loopback, waking the handler thread), which a prediction made
// only of compute, codec and link time leaves out.
#pragma once

#include "core/status.h"

namespace splitinfer::runtime {

// Median milliseconds of one empty unary call on 127.0.0.1, after `warmup` calls.
Result<double> LoopbackCallMs(int warmup = 50, int repeats = 200);

}  // namespace splitinfer::runtime
