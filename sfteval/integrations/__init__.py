"""sfteval inside other tools' training loops: `SftevalCallback` for transformers' Trainer and TRL's SFTTrainer.

Importing this package imports transformers (the callback is a `TrainerCallback`); `import sfteval` does not.
"""

from sfteval.integrations.callback import SftevalCallback

__all__ = ["SftevalCallback"]
