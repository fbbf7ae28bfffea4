"""Int8 TFLite export of QDQ ONNX models, for TFLite Micro and Arm Ethos-U (Vela).

`export_tflite` writes the flatbuffer (`unsupported_ops` lists what it cannot map) from the same DQ → op → Q groups that the
compiler and its NumPy reference (`compiler.reference`) compute; `verify_tflite` runs
it in the TFLite Micro and LiteRT interpreters (each in a subprocess) and compares
their outputs with `compiler.reference.run_int8_reference`. See docs/tflite-export.md.
"""

from compiler.tflite.export import TFLiteExport, TFLiteTensor, export_tflite
from compiler.tflite.graph import unsupported_ops

__all__ = ["TFLiteExport", "TFLiteTensor", "export_tflite", "unsupported_ops"]
