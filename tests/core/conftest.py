import pytest


@pytest.fixture(scope="session")
def devkit(shared_data):
    """The real ELL DevKit model, imported: (featurizer, classifier, categories)."""
    from core.importers.ell import load_ell
    from core.models import load_categories

    d = shared_data / "ell_devkit_model"
    return load_ell(d / "featurizer.ell"), load_ell(d / "classifier.ell"), load_categories(d / "categories.txt")
