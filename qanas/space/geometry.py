"""The geometry of a space's networks that the search and the commands check sizes against.

`total_stride` is measured on the analytic layer shapes every space exposes
(`SearchSpace.layer_specs`); `check_image_size` raises `ConfigError` (exit 2 in the
CLI, one line) naming the option, the bad size and what to pass instead, before
any work starts.
"""

from __future__ import annotations

from qanas.errors import ConfigError

# Input side used to measure a space's total stride: 2^7 * 3^3, divisible by every
# product of the stride-2 and stride-3 layers the registered spaces use, so the
# analytic shapes of `layer_specs` are exact.
_REFERENCE_SIDE = 3456


def total_stride(space) -> tuple[int, int]:
    """The (H, W) downsampling from the input to the deepest feature map of `space`'s networks.

    Measured on the analytic layer shapes (`space.layer_specs`) of the space's
    max, min and seed subnets; the smallest of the three is returned, the stride
    every subnet reaches at least (16 for the SqueezeNAS spaces and mbv2-deeplab, 8 for
    fmas-mbv2 and fmas-xception, whose strides are search decisions, 64 for
    efficient-topformer's pooled tokens; a deeper subnet's maps stay one pixel at
    smaller sizes because convolutions pad).
    Global pooling, and the 1x1 layers after it, are left out: they reduce to one
    pixel at any size.
    """
    best: list[int] | None = None
    for cfg in {space.max_config(), space.min_config(), space.seed_config()}:
        specs = space.layer_specs(cfg, (_REFERENCE_SIDE, _REFERENCE_SIDE))
        spatial = [s.out_hw for s in specs
                   if s.op not in ("global_pool", "linear") and tuple(s.in_hw) != (1, 1)]
        stride = [round(_REFERENCE_SIDE / max(1, min((hw[a] for hw in spatial),
                                                     default=_REFERENCE_SIDE)))
                  for a in (0, 1)]
        best = stride if best is None else [min(b, s) for b, s in zip(best, stride, strict=True)]
    return best[0], best[1]


def check_image_size(space, image_size, flag: str = "--image-size") -> tuple[int, int]:
    """Refuses an image smaller than the network's total stride on either side.

    Below it even the least downsampling subnet's deepest feature maps are mostly
    padding (a 1x1 image "trains" and scores, meaninglessly). Sizes that are not multiples of the stride are
    accepted: every registered decoder resizes to its skip connection's size and
    the output to the input's (`tests/qanas/train/test_train_cli.py` runs an odd size).

    Returns:
        The size as a tuple of two ints.
    """
    try:
        h, w = (int(v) for v in image_size)
    except (TypeError, ValueError):
        raise ConfigError(f"{flag} takes two integers H W; got {image_size!r}") from None
    sh, sw = total_stride(space)
    if h < sh or w < sw:
        raise ConfigError(
            f"{flag} {h} {w} is smaller than the total stride {sh}x{sw} of {space.name} "
            f"(its deepest features would be padding); pass at least {flag} {sh} {sw}, "
            f"e.g. {flag} {2 * sh} {4 * sw}")
    return h, w
