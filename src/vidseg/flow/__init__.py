"""Optical flow backends (OpenCV DIS, flow files, user callables) and the official VSPW label warp."""

from vidseg.flow.backends import CallableFlow, DISFlow, FileFlow, make_flow_backend, read_flo, write_flo
from vidseg.flow.warp import flowwarp

__all__ = ["CallableFlow", "DISFlow", "FileFlow", "flowwarp", "make_flow_backend", "read_flo", "write_flo"]
