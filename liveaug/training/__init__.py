"""Training the predictors (optional ``train`` extra: PyTorch on the CPU).

``data`` simulates and caches training frames, ``model`` is the four-head U-Net, ``train`` the
loop, ``export`` ONNX export and its numeric check, ``package`` the bioimage.io folder writer,
``pipeline`` the steps after training (evaluate, quantise, model card). Only this package imports
torch; inference (``liveaug.inference``) needs onnxruntime alone.
"""
