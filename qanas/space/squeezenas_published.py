"""The six networks SqueezeNAS published, as subnets of our SqueezeNAS spaces.

Genotypes are the authors' released architectures (Shaw et al., 2019), one option label
per superblock; ``published_gmacs`` is the cost the authors publish for each at
1024×2048 with 19 classes (Cityscapes), which `layer_specs` reproduces (checked in the
tests).

Example:
    >>> cfg = published_config("lat_small")  # doctest: +SKIP
    >>> get_space(cfg.space).costs(cfg, (1024, 2048), 19)["macs"] / 1e9  # doctest: +SKIP
    4.47...
"""

from __future__ import annotations

from dataclasses import dataclass

from qanas.errors import ConfigError
from qanas.space.base import SubnetConfig


@dataclass(frozen=True)
class PublishedNetwork:
    """One released SqueezeNAS network: its space, genotype and published cost."""

    name: str
    space: str
    genotype: tuple[str, ...]
    published_gmacs: float

    def config(self) -> SubnetConfig:
        """The network as a `SubnetConfig` of its space."""
        return SubnetConfig.from_str(f"{self.space}:{'_'.join(self.genotype)}")


def _net(name: str, space: str, genotype: str, gmacs: float) -> PublishedNetwork:
    return PublishedNetwork(name, space, tuple(genotype.split()), gmacs)


PUBLISHED: dict[str, PublishedNetwork] = {n.name: n for n in (
    _net("mac_small", "squeezenas-small",
         "k3e1g2 k3e1g1 k3e1g1 k3e1g2 k5e6g1 k3e1g1 k3e1g1 k3e1g2d2 k5e6g1 k3e6g1d2 skip k3e1g2 "
         "k5e6g1 k3e3g1d2 k3e1g1d2 k3e1g1d2 k3e6g1d2 k3e1g2d2 k3e1g2d2 k3e1g2d2", 3.01),
    _net("lat_small", "squeezenas-small",
         "k3e1g1 skip skip skip k3e6g1 k3e6g1 skip skip k5e6g1 k3e6g1d2 k5e1g2 k3e1g2 k3e6g1d2 "
         "k3e6g1d2 k3e6g1d2 k3e1g1d2 k3e6g1d2 k3e3g1d2 k3e3g1d2 k3e3g1d2", 4.47),
    _net("mac_large", "squeezenas-large",
         "k3e1g2 k3e6g1 k3e1g2d2 k3e1g2 k3e1g2 k5e6g1 k5e6g1 k3e6g1d2 k5e6g1 k5e6g1 k5e6g1 "
         "k5e1g1 k3e3g1 k5e6g1 k3e1g1 k5e1g1 k3e3g1d2 k3e6g1d2 k3e1g2d2 k3e1g2d2 k3e1g2d2 "
         "k3e1g1d2", 9.39),
    _net("lat_large", "squeezenas-large",
         "skip k3e6g1 k3e3g1 k3e1g1d2 k3e3g1 k5e6g1 k3e6g1 k3e3g1 k3e6g1d2 k5e6g1 k5e1g1 k5e1g1 "
         "k5e1g2 k3e6g1d2 k3e6g1d2 k3e6g1d2 k3e1g1 k3e6g1d2 k3e6g1d2 k3e6g1d2 k3e6g1d2 "
         "k3e6g1d2", 19.57),
    _net("mac_xlarge", "squeezenas-xlarge",
         "k3e1g2 k3e3g1 k3e1g2 k5e1g1 k3e3g1d2 k5e6g1 k5e1g2 k3e1g2d2 k3e3g1 k5e6g1 k3e3g1 skip "
         "k3e1g2d2 k5e6g1 k3e1g1 k5e6g1 skip k3e6g1d2 k3e1g2d2 k3e1g2d2 k3e1g2d2 k3e3g1d2", 21.84),
    _net("lat_xlarge", "squeezenas-xlarge",
         "skip k3e3g1 k3e3g1 k3e3g1 k3e1g1d2 k3e6g1 k3e3g1 k5e6g1 k5e1g2 k5e6g1 k3e6g1 k3e1g2d2 "
         "k3e6g1 k5e6g1 k3e3g1d2 k3e1g2d2 k3e3g1 k3e6g1d2 k3e3g1d2 k5e1g1 k3e3g1d2 k3e6g1d2",
         32.73),
)}


def published_config(name: str) -> SubnetConfig:
    """The `SubnetConfig` of published network ``name`` (e.g. ``"lat_small"``)."""
    if name not in PUBLISHED:
        raise ConfigError(f"unknown published SqueezeNAS network {name!r}; choose one of "
                          f"{sorted(PUBLISHED)}")
    return PUBLISHED[name].config()
