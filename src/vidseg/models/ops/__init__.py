"""Operators that PyTorch lacks on CPU (modulated deformable convolution)."""

from vidseg.models.ops.dcn import ModulatedDeformConv, ModulatedDeformConvWithOff, modulated_deform_conv2d

__all__ = ["ModulatedDeformConv", "ModulatedDeformConvWithOff", "modulated_deform_conv2d"]
