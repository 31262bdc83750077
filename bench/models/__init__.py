"""Models: Keras to ONNX conversion (cached), preprocessing, and embedding with onnxruntime."""
