"""`sfteval lint`: audit a dataset + tokenizer + template exactly as `sfteval train` would render and mask it."""
