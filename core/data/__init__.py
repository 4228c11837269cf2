"""Data: training lists (kws lists), featurized datasets (kws dataset), synthetic speech (kws synth)."""
