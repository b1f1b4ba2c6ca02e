/*
 * clock.h - the tests' time: a monotonic clock and a sleep.
 */
#ifndef KVT_CLOCK_H
#define KVT_CLOCK_H

#include <stdint.h>

/* CLOCK_MONOTONIC in nanoseconds, and in seconds. */
uint64_t kvt_now_ns(void);
double kvt_now_s(void);

/* Sleep ms milliseconds (a signal may cut it short). */
void kvt_sleep_ms(unsigned ms);

#endif
