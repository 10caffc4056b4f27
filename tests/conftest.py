"""Settings for the whole suite and every process it starts."""
import os

# onnxruntime >= 1.32 uploads usage telemetry from a thread started on import; on a machine that can resolve
# but not reach the host (CI), the process waits on it for minutes. The library sets the same default.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
