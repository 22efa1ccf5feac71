# Namespace of cuda-python (cuda.bindings); only what runtime/cudart.py uses is described here.
