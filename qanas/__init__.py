"""qanas: quantization-aware neural architecture search for semantic segmentation.

Packages: `qanas.data` (datasets, mIoU), `qanas.space` (search spaces),
`qanas.supernet` (weight-sharing supernets), `qanas.train` (FairNAS),
`qanas.quant` (Brevitas int8), `qanas.score` (quantized mIoU), `qanas.cli`.
"""

__version__ = "0.1.0"
