/*
 * internal.h - the library's internal headers, for the unit tests of its
 * seams (tests/test_unit_*.c). Only tests include this file: nothing here
 * is installed or promised. The tests link the static library, where the
 * verso__ symbols (hidden in the shared one) are reachable.
 */
#ifndef VERSO_TESTS_INTERNAL_H
#define VERSO_TESTS_INTERNAL_H

#include "orm/internal.h"
#include "orm/service.h"
#include "rest/internal.h"
#include "sync/internal.h"

#endif
