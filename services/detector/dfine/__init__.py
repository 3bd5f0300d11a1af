"""D-FINE written by us with the official parameter names: official checkpoints load with strict=True
and give the official outputs (HGNetv2 backbone, hybrid encoder, FDR decoder, deploy mode, postprocessor)."""
