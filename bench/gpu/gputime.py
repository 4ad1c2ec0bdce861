"""GPU timing shared by the bench/gpu scripts."""
import statistics

import torch


def time_ms(fn, groups=15, calls=20):
    """Per-call GPU time of fn: `calls` calls captured in a CUDA graph (so Python's launch cost, which
    exceeds many of these kernels, is not timed), replayed `groups` times; (median, min, max) in ms."""
    fn()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(calls):
            fn()
    graph.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(groups):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop) / calls)
    return statistics.median(times), min(times), max(times)
