"""TensorRT's log, collected: errors are kept so a failure becomes one DeployError line with TensorRT's
own reason, and warnings and errors go to the package log (third-party chatter stays off the console)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from runtime.log import logger

if TYPE_CHECKING:
    import tensorrt as trt

ERROR, WARNING = 1, 2   # ILogger::Severity: kINTERNAL_ERROR 0, kERROR 1, kWARNING 2, kINFO 3 (8.6-11.x NvInferRuntimeBase.h)


class TrtMessages:
    """Sink behind a trt.ILogger subclass; `suffix()` is ': <last TensorRT error>' or ''."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self._logger: trt.ILogger | None = None

    def record(self, severity: int, message: str) -> None:
        text = " ".join(message.split())
        if severity <= ERROR:
            self.errors = [*self.errors[-9:], text]
        if severity <= WARNING:
            logger.debug(f"TensorRT: {text}")

    def suffix(self) -> str:
        return f": {self.errors[-1]}" if self.errors else ""

    def trt_logger(self) -> trt.ILogger:
        """The ILogger to hand to trt.Runtime / trt.Builder (kept alive here as long as this sink)."""
        if self._logger is None:
            self._logger = _forwarding_logger(self)
        return self._logger


def _forwarding_logger(sink: TrtMessages) -> trt.ILogger:
    import tensorrt as trt

    class ForwardingLogger(trt.ILogger):
        # A Python ILogger must call the base __init__ and define log(severity, msg) (pyCoreDoc.h, 8.6-11.x).
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, severity: trt.ILogger.Severity, msg: str) -> None:
            sink.record(int(severity), msg)

    return ForwardingLogger()


_PLUGIN_MESSAGES = TrtMessages()   # lives as long as the process: see register_plugins


def register_plugins() -> bool:
    """trt.init_libnvinfer_plugins (EfficientNMS_TRT) with one process-wide logger. The plugin library keeps the
    logger it is given as a raw global and logs through it later (plugin/api/inferPlugin.cpp `gLogger`,
    v8.6.1-v11.1), so a per-build or per-engine logger would dangle once freed; Polygraphy passes its global
    logger the same way. Plugin messages go to the package log."""
    import tensorrt as trt

    return bool(trt.init_libnvinfer_plugins(_PLUGIN_MESSAGES.trt_logger(), ""))
