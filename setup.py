"""Compiled kernels; everything else about the package is in pyproject.toml.

Both extensions are optional: without a C compiler the install still succeeds and the
numpy implementations run instead (same results, slower). -ffp-contract=off keeps the
compiler from fusing multiply-adds, which would change results in the last bit.
"""

from setuptools import Extension, setup

FLAGS = ["-O3", "-ffp-contract=off", "-fno-fast-math"]

setup(
    ext_modules=[
        Extension("shared.formats._decimal", ["shared/formats/_decimal.c"], extra_compile_args=FLAGS, optional=True),
        Extension(
            "services.evaluator.metrics._kernels",
            ["services/evaluator/metrics/_kernels.c"],
            extra_compile_args=FLAGS,
            optional=True,
        ),
        # MOTRv2's deformable sampling for CPU inference: float32, not bit-exact by design (see the file)
        Extension(
            "services.tracker.motrv2._msda",
            ["services/tracker/motrv2/_msda.c"],
            extra_compile_args=["-O3"],
            optional=True,
        ),  # fmt: skip
    ]
)
