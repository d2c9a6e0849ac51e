"""sfteval's masked-loss SFT trainer (`sfteval train`) and data/mask lint (`sfteval lint`).

Importing this package is light; torch and transformers load only when training or linting runs.
"""
