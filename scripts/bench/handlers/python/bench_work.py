"""The work of the Python bench handlers (handler.py and ../raw_echo.py): nothing, or ``burn(n)``, n rounds of a
32-bit xorshift in pure Python, the Python counterpart of ../work.ts. ``python3 bench_work.py MS`` prints the
iterations that take MS milliseconds here (the fastest of 7 timings: the machine is shared)."""
import sys
import time

_sink = 0


def burn(iterations):
    """Fixed CPU work that holds the GIL all along: ``iterations`` xorshift rounds."""
    global _sink
    x = 0x9E3779B9
    for _ in range(iterations):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
    _sink ^= x
    return _sink


def calibrate(ms):
    probe = 200_000
    best = float("inf")
    for _ in range(7):
        t = time.perf_counter()
        burn(probe)
        best = min(best, time.perf_counter() - t)
    return round(probe * ms / 1000 / best), best * 1000 / probe


if __name__ == "__main__":
    iterations, ms_per_iteration = calibrate(float(sys.argv[1]) if len(sys.argv) > 1 else 3.0)
    print('{"iterations": %d, "msPerBatch": %.3f}' % (iterations, iterations * ms_per_iteration))
