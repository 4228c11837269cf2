"""Voice activity detection around a classifier: add it to models (model), trace and plot what it
does (analysis, plot), score it on continuous streams (streams, runner, compare) and tune it
(tune). The VAD itself (ELL's, exact) lives in core.features.vad."""
