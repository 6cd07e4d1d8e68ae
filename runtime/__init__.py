"""ganrt runtime: stream frames through a model bundle inside a latency budget.

Imports only numpy, OpenCV and the standard library eagerly; every heavy or
optional dependency (onnxruntime, tensorrt, cuda-python, pydicom, torch) is
imported lazily by the backend or source that needs it.
"""

__version__ = "0.1.0"
