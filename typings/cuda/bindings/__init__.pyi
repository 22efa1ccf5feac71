# cuda-bindings 12.6+/13.x: `cuda.bindings.runtime` and `cuda.bindings.utils` (see runtime.pyi).
__version__: str
