"""What train.py adds to Lightning: the optimiser and schedule (`optim`), the resume check
(`resume`), atomic checkpoints (`checkpoint_io`), generator state in checkpoints (`random_state`)
and the run's progress bar (`progress_bar`)."""
