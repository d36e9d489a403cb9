"""MaskGIT's iterative decoding: the loop and its schedules (`iterative`), its settings and presets'
base (`settings`), and the batch-independent noise it draws (`noise`). Plain PyTorch."""
