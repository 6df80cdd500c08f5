// ThreadSanitizer suppressions for the I/O tests that reuse fd numbers across
// threads (suite threads).
//
// TSan models each fd number as a memory location: creating an fd writes it and
// close() orders the next creation after it. On io_uring eddy closes with
// IORING_OP_CLOSE, inside the kernel, where TSan cannot see it; when another thread
// then gets the same number (socketpair, dup, pipe2, accept4), TSan reports a race
// between the two creations. Only reports whose top frame is an fd-creating call are
// suppressed: a race on memory is still reported.
extern "C" const char* __tsan_default_suppressions() {
  return "race_top:socketpair\n"
         "race_top:dup\n"
         "race_top:pipe2\n"
         "race_top:pipe\n"
         "race_top:accept4\n"
         "race_top:socket\n"
         "race_top:eventfd\n";
}
