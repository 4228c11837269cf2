"""kwsgui core: audio, features, model graph, importers, compiler, training. Never imports Qt."""

__version__ = "0.1.0"
