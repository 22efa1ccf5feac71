"""The `effdet-deploy` command line: a thin shell over the library's public API."""
__version__ = "0.1.0"
