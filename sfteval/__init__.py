"""sfteval: evaluate and diagnose supervised-fine-tuned language-model checkpoints."""

__version__ = "0.1.0"
