"""moviead: training and evaluation of movie audio-description (AD) models.

The library (this package) is plain PyTorch. Lightning lives in ``moviead.stages`` and
``moviead.datamodules`` only; ``moviead.cli`` wires everything together.
"""

__version__ = "0.1.0"
