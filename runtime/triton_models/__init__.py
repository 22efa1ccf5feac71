"""Triton python-backend model sources, copied as REPO/<name>/1/model.py by export/triton_served.py. They run
inside Triton's stub only (they import triton_python_backend_utils); the work is in runtime/served_model.py."""
