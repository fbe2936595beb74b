"""The four attention modules. Pure PyTorch: nothing here imports Ultralytics."""
