"""synful: synaptic partner detection in 3D electron microscopy."""

__version__ = "0.1.0"
