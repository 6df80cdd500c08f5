// eddy_micro's entry point. Kept separate so features can route their own modes
// (e.g. helper processes re-executing this binary) before Google Benchmark parses
// the command line.
#include <benchmark/benchmark.h>

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
