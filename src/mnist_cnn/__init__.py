"""mnist-cnn: train, evaluate and use convolutional networks on MNIST with Keras 3."""

__version__ = "0.1.0"
