"""The Coral Edge TPU path on the host: compile the uint8 variant with
`edgetpu_compiler` when it is installed (compiler.py), read its log, and
pre-check a model against Coral's documented rules when it is not
(precheck.py). Nothing here imports TensorFlow."""
