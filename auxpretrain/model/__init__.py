"""Pure tf.compat.v1 graph builders: the encoder whose layers transfer, the heads, the
pretraining objectives, freezing and learning-rate schedules. They create variables in the
current graph and never open a Session, read argv or touch files. (`variables` and
`schedules` import no TensorFlow.)"""
