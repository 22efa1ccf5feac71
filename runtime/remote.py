"""`RemoteDetector`: the Detector's twin over a Triton server serving our python-backend detector (or its
ensemble). Images go out encoded (arrays as lossless PNG, files as their own bytes), Detections come back in
original-image pixels, equal to what a local Detector over the same file computes.

tritonclient's HTTP client is gevent-based and must not be shared by threads, so each thread gets its own client
(HTTP or gRPC alike). Every failure is one DeployError line naming the server; nothing waits past `timeout_s`.
"""
from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from runtime.errors import DeployError
from runtime.lazy import lazy_import
from runtime.model_info import NMS_OUTPUTS, ModelInfo
from runtime.result import Detections
from runtime.served import INPUT, config_parameters, encode_png, info_from_parameters, unpack

PROTOCOLS = ("http", "grpc")


def split_url(url: str) -> tuple[str | None, str]:
    """'grpc://h:p' -> ('grpc', 'h:p'); 'h:p' -> (None, 'h:p'): the protocol is probed."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme not in PROTOCOLS:
        raise DeployError(f"{url}: the server is HOST:PORT, http://HOST:PORT or grpc://HOST:PORT")
    address = rest if sep else url
    if ":" not in address or not address.rsplit(":", 1)[1].isdigit():
        raise DeployError(f"{url}: give the server as HOST:PORT (e.g. 127.0.0.1:8000)")
    return (scheme if sep else None), address


class RemoteDetector:
    """RemoteDetector(url, model_name=None): model_name may be left out when the server serves one detector."""

    def __init__(self, url: str, model_name: str | None = None, timeout_s: float = 60.0) -> None:
        protocol, self.address = split_url(url)
        self.timeout_s = timeout_s
        self._local = threading.local()
        self._clients: list[Any] = []
        self._lock = threading.Lock()
        self.protocol = protocol or self._probe()
        self.model_name = model_name or self._only_detector()
        self.info: ModelInfo = info_from_parameters(config_parameters(self._config(self.model_name)),
                                                    f"{self.url} model '{self.model_name}'")

    @property
    def url(self) -> str:
        return f"{self.protocol}://{self.address}"

    def _module(self, protocol: str | None = None) -> Any:
        return lazy_import(f"tritonclient.{protocol or self.protocol}", f"'tritonclient[{protocol or self.protocol}]'")

    def _make_client(self, protocol: str) -> Any:
        module = self._module(protocol)
        if protocol == "http":
            return module.InferenceServerClient(self.address, connection_timeout=self.timeout_s,
                                                network_timeout=self.timeout_s)
        return module.InferenceServerClient(self.address)

    def client(self) -> Any:
        """This thread's client (created on first use)."""
        found = getattr(self._local, "client", None)
        if found is None:
            found = self._local.client = self._make_client(self.protocol)
            with self._lock:
                self._clients.append(found)
        return found

    def _probe(self) -> str:
        """HTTP if the port answers HTTP's health check, else gRPC's; DeployError if neither."""
        for protocol in PROTOCOLS:
            try:
                client = self._make_client(protocol)
                if client.is_server_live(**({"client_timeout": 5} if protocol == "grpc" else {})):
                    client.close()
                    return protocol
            except Exception:
                continue
        raise DeployError(f"{self.address}: no Triton server answers there (HTTP or gRPC)")

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as e:      # tritonclient, gevent, grpc and socket errors all become one line
            text = getattr(e, "message", None)
            message = text() if callable(text) else str(e) or type(e).__name__
            raise DeployError(f"{self.url}: {what} failed: {' '.join(str(message).split())[:300]}") from None

    def _config(self, name: str) -> dict[str, Any]:
        if self.protocol == "http":
            return dict(self._call(f"model '{name}' config", self.client().get_model_config, name))
        found = self._call(f"model '{name}' config", self.client().get_model_config, name, as_json=True,
                           client_timeout=self.timeout_s)
        return dict(found["config"])

    def _only_detector(self) -> str:
        index = self._call("repository index", self.client().get_model_repository_index,
                           **({"as_json": True} if self.protocol == "grpc" else {}))
        models = index.get("models", []) if isinstance(index, dict) else index
        ready = [m["name"] for m in models if m.get("state") == "READY"]
        detectors = [n for n in ready if config_parameters(self._config(n)).get("role") == "detector"]
        if len(detectors) != 1:
            raise DeployError(f"{self.url}: serves {len(detectors)} detectors ({', '.join(detectors) or 'none'}); "
                              "name one with --model-name / model_name=")
        return str(detectors[0])

    def request(self, data: bytes, request_id: str | None = None) -> tuple[str, Detections]:
        """One encoded image -> (the response's request id, Detections). The id must echo ours."""
        module = self._module()
        tensor = np.frombuffer(data, np.uint8)[None]
        image = module.InferInput(INPUT, list(tensor.shape), "UINT8")
        image.set_data_from_numpy(tensor)
        rid = request_id or uuid.uuid4().hex
        outputs = [module.InferRequestedOutput(n) for n in NMS_OUTPUTS]
        extra = {"client_timeout": self.timeout_s} if self.protocol == "grpc" else {}
        result = self._call("inference", self.client().infer, self.model_name, [image], outputs=outputs,
                            request_id=rid, **extra)
        response = result.get_response()
        got = response.get("id", "") if isinstance(response, dict) else response.id
        return got, unpack({n: result.as_numpy(n) for n in NMS_OUTPUTS})[0]

    def detect(self, images: object) -> Any:
        """As Detector.detect: one image (HxWx3 uint8 RGB array, PIL image, encoded bytes or a file path) ->
        Detections; a list -> a list. Requests go one by one (the server batches across clients)."""
        single = not isinstance(images, (list, tuple))
        found = [self._one(im) for im in ([images] if single else list(images))]  # type: ignore[call-overload]
        return found[0] if single else found

    def _one(self, image: object) -> Detections:
        if isinstance(image, (bytes, bytearray)):
            data = bytes(image)
        elif isinstance(image, (str, Path)):
            data = Path(image).read_bytes()
        else:
            data = encode_png(image if isinstance(image, np.ndarray) else _pil_array(image))
        rid = uuid.uuid4().hex
        got, found = self.request(data, rid)
        if got != rid:
            raise DeployError(f"{self.url}: answer for request '{got}' came back for '{rid}'")
        return found

    def close(self) -> None:
        with self._lock:
            for c in self._clients:
                try:
                    c.close()
                except Exception:       # a gevent client closed from another thread: its socket goes anyway
                    pass
            self._clients.clear()
        self._local = threading.local()

    def __enter__(self) -> "RemoteDetector":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _pil_array(image: object) -> np.ndarray:
    from runtime.letterbox import check_image

    return check_image(image)
