"""Optical flow backends (OpenCV DIS, RAFT, flow files, user callables), a flow cache and the official VSPW warp."""

from vidseg.flow.backends import CallableFlow, DISFlow, FileFlow, make_flow_backend, read_flo, write_flo
from vidseg.flow.cache import CachedFlow, fill_flow_cache
from vidseg.flow.factory import build_flow_backend
from vidseg.flow.raft import build_raft
from vidseg.flow.raft_backend import RAFTFlow, load_raft
from vidseg.flow.warp import flowwarp

__all__ = ["CachedFlow", "CallableFlow", "DISFlow", "FileFlow", "RAFTFlow", "build_flow_backend", "build_raft",
           "fill_flow_cache", "flowwarp", "load_raft", "make_flow_backend", "read_flo", "write_flo"]
