// eddy_micro's entry point. Kept separate so features can route their own modes
// (e.g. helper processes re-executing this binary) before Google Benchmark parses
// the command line.
#include <benchmark/benchmark.h>

#include <eddy/sched/process_pool.hpp>

int main(int argc, char** argv) {
  // Helper processes re-execute this binary: route them before anything else.
  eddy::process_pool::helper_main_if_requested(argc, argv);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
