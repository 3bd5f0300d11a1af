"""D-FINE written by us with the official parameter names (checkpoints load with strict=True).

So far: the HGNetv2 backbone (structure and forward). The hybrid encoder, the decoder, the
postprocessor and parity with the official vectors are the next steps (see the issue notes).
"""
