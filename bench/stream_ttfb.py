#!/usr/bin/env python3
"""Streaming latency: N sequential streamed chat requests on one keep-alive connection.

Prints "p50_ttfb_ms p99_ttfb_ms p50_done_ms p99_done_ms" where TTFB is the time from sending the
request to the first body byte, and "done" the time to the end marker (`[DONE]` unless told otherwise).

    stream_ttfb.py HOST PORT PATH [N] [END_MARKER]   (END_MARKER defaults to [DONE]; a provider's
                                                     own stream ends with its own marker)
"""
import http.client
import sys
import time

host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
count = int(sys.argv[4]) if len(sys.argv) > 4 else 200
end_marker = (sys.argv[5] if len(sys.argv) > 5 else "[DONE]").encode()
body = b'{"stream":true,"messages":[{"role":"user","content":"Count to five."}]}'
headers = {"Content-Type": "application/json"}


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


connection = http.client.HTTPConnection(host, port)
first, done = [], []
for index in range(count + 10):
    started = time.perf_counter()
    connection.request("POST", path, body=body, headers=headers)
    response = connection.getresponse()
    received = response.read1(65536)
    first_byte = time.perf_counter()
    while end_marker not in received:
        more = response.read1(65536)
        if not more:
            sys.exit(f"stream ended without {end_marker!r}: {received[-200:]!r}")
        received += more
    finished = time.perf_counter()
    response.read()  # the rest of the body (chunk terminator) before the next request
    if response.status != 200:
        sys.exit(f"status {response.status}: {received[:200]!r}")
    if index >= 10:  # the first requests warm up connections and caches
        first.append((first_byte - started) * 1000)
        done.append((finished - started) * 1000)

print(f"{percentile(first, 0.5):.3f} {percentile(first, 0.99):.3f} "
      f"{percentile(done, 0.5):.3f} {percentile(done, 0.99):.3f}")
