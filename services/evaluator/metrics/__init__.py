"""TrackEval-identical HOTA, CLEAR, Identity and Count (MotChallenge2DBox, no preprocessing).

Our own implementation, twice: the numpy/scipy modules (`sequence`, `hota`, `clear`, `identity`)
and the compiled kernel (`_kernels.c` via `compiled`, the default when built, several times
faster); both give the same bits and TrackEval is only a test oracle. Every formula, threshold
(`>= t - eps` for CLEAR and HOTA, `>= t` for Identity), summation order and empty-input branch
follows `../shared/reference/eval/SPEC.md`, so values agree with TrackEval's COMBINED_SEQ to
the last bit on ordinary data.
"""

from .report import trackeval_metrics

__all__ = ["trackeval_metrics"]
