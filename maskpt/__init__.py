"""maskpt: masking policies for intermediate pre-training of BART."""

__version__ = "0.2.0"
