"""ttsim: a cycle-approximate simulator of Tenstorrent Tensix devices.

Not to be confused with Tenstorrent's functional simulator of the same name or with the
``ttsim`` package inside tenstorrent/polaris: this one is a SimPy timing model that runs
tt-metal style reader / compute / writer kernels and reports DEVICE KERNEL DURATION.
"""

__version__ = "0.1.0"
