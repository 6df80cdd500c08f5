// ThreadSanitizer suppressions for the thread-pool tests, linked into each of them.
//
// An exception that crosses threads (thrown in a job, rethrown by future::get or by
// join) is reference-counted inside libstdc++/libsupc++, which is not instrumented: TSan
// does not see the atomic count that orders the last release (which frees the exception
// object) after the other thread's reads. So it reports a race between, say, the test's
// catch block reading what() and the worker's std::promise destructor freeing the
// exception. Only reports whose stack frees an exception object are suppressed: through
// exception_ptr's release, or (when libstdc++ tail-calls past it) the destructors of the
// standard exception bases that every exception in these tests derives from.
extern "C" const char* __tsan_default_suppressions() {
  return "race:std::__exception_ptr::exception_ptr::_M_release\n"
         "race:std::runtime_error::~runtime_error\n"
         "race:std::logic_error::~logic_error\n";
}
