"""One package logger, so every module reports progress the same way."""
import logging

logger = logging.getLogger("effdet_deploy")
