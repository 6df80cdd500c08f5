// eddy: a C++20 event-loop runtime for Linux. One include for all of it.
#pragma once

#include <eddy/io/fd.hpp>
#include <eddy/runtime/errors.hpp>
#include <eddy/runtime/loop.hpp>
#include <eddy/runtime/run.hpp>
#include <eddy/runtime/task.hpp>
#include <eddy/runtime/time.hpp>
