// `serve` and `node` in a build without the runtime (gRPC, protobuf, prometheus-cpp or libpng
// missing): the commands exist and say what to install.
#include "tools/cli/runtime_cmd.h"

namespace splitinfer::cli {

std::function<Status()> AddRuntimeCommands(CLI::App& app, std::function<bool()>* selected) {
  auto* serve = app.add_subcommand("serve", "serve pipelines over gRPC (not in this build)");
  auto* node = app.add_subcommand("node", "run a pipeline's node side (not in this build)");
  serve->allow_extras();
  node->allow_extras();
  *selected = [serve, node] { return serve->parsed() || node->parsed(); };
  return [] {
    return Unimplemented("this build has no runtime: install libgrpc++-dev, protobuf-compiler-grpc, "
                         "prometheus-cpp-dev and libpng-dev (scripts/install-deps.sh), then rebuild");
  };
}

}  // namespace splitinfer::cli
